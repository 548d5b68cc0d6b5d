"""The model fallback chain: timeouts, circuit breakers, and what the event records."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from events.codec import AvroCodec
from events.enrichment import ModelInfo
from models.chain import CircuitBreaker, FallbackChain, Link, Unavailable
from processors.baseline import BaselineLexicalModel
from processors.enrich import enrich
from processors.ports import Prediction
from tests.factories import received


class Flaky:
    """Answers like the baseline under its own name, or fails while ``failing`` is set."""

    def __init__(self, name: str) -> None:
        self._info = ModelInfo(name=name, version="1", sha256="a" * 64)
        self.failing = False
        self.calls = 0
        self._inner = BaselineLexicalModel()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.calls += 1
        if self.failing:
            raise ConnectionError("server unreachable")
        return self._inner.predict(texts)


class Stuck(Flaky):
    """Blocks until released: a model server that stopped answering."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.release.wait(10)
        return super().predict(texts)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_link_answers_and_nothing_is_recorded_as_fallback() -> None:
    a, b = Flaky("a"), Flaky("b")
    chain = FallbackChain([Link("a", a, 1.0), Link("b", b)])
    (p,) = chain.predict(["I forgot my password"])
    assert p.model == a.info
    assert p.model is not None and p.model.fallbacks == ()
    assert b.calls == 0


def test_an_error_falls_back_and_the_reason_is_recorded_and_counted() -> None:
    a, b = Flaky("a"), Flaky("b")
    a.failing = True
    seen: list[tuple[str, str, str]] = []
    chain = FallbackChain([Link("a", a, 1.0), Link("b", b)], on_fallback=lambda *x: seen.append(x))
    (p,) = chain.predict(["I forgot my password"])
    assert p.model is not None
    assert p.model.name == "b"
    assert p.model.fallbacks == ("a: error ConnectionError: server unreachable",)
    assert seen == [("a", "b", "error")]


def test_a_timeout_falls_back() -> None:
    a, b = Stuck("a"), Flaky("b")
    chain = FallbackChain([Link("a", a, 0.05), Link("b", b)])
    try:
        (p,) = chain.predict(["hello"])
    finally:
        a.release.set()
        chain.close()
    assert p.model is not None and p.model.fallbacks == ("a: timeout after 0.05s",)


def test_the_breaker_opens_skips_the_link_and_lets_a_trial_through_after_the_cool_down() -> None:
    clock = Clock()
    a, b = Flaky("a"), Flaky("b")
    a.failing = True
    breaker = CircuitBreaker(failures=2, reset_s=30, clock=clock)
    chain = FallbackChain([Link("a", a, 1.0, breaker), Link("b", b)])
    chain.predict(["x"])
    chain.predict(["x"])
    assert breaker.state == "open" and a.calls == 2
    (p,) = chain.predict(["x"])
    assert a.calls == 2, "an open circuit is not called"
    assert p.model is not None and p.model.fallbacks == ("a: circuit open",)
    clock.now = 31
    assert breaker.state == "half-open"
    a.failing = False
    (p,) = chain.predict(["x"])
    assert a.calls == 3 and breaker.state == "closed"
    assert p.model is not None and p.model.name == "a" and p.model.fallbacks == ()


def test_a_failed_trial_opens_the_circuit_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_s=10, clock=clock)
    breaker.failure()
    clock.now = 11
    assert breaker.allow()
    assert not breaker.allow(), "one trial at a time"
    breaker.failure()
    assert breaker.state == "open"


def test_the_last_link_failing_raises_so_the_message_is_dead_lettered() -> None:
    a, b = Flaky("a"), Flaky("b")
    a.failing = b.failing = True
    with pytest.raises(ConnectionError):
        FallbackChain([Link("a", a, 1.0), Link("b", b)]).predict(["x"])


def test_an_adapter_that_could_not_load_is_passed_over_visibly() -> None:
    chain = FallbackChain(
        [
            Link("local", Unavailable("local", FileNotFoundError("model.onnx"))),
            Link("b", Flaky("b")),
        ]
    )
    (p,) = chain.predict(["x"])
    assert p.model is not None
    assert p.model.fallbacks == (
        "local: error RuntimeError: local could not be loaded: FileNotFoundError: model.onnx",
    )


def test_the_enriched_event_names_the_model_that_answered_and_survives_avro() -> None:
    a, b = Flaky("a"), Flaky("b")
    a.failing = True
    chain = FallbackChain([Link("a", a, 1.0), Link("b", b)])
    message = received("I want to speak to a human")
    (prediction,) = chain.predict([message.text])
    event = enrich(message, prediction, chain.info)
    assert event.model.name == "b"
    assert "model_fallback" in event.flags
    codec = AvroCodec()
    assert codec.decode(codec.encode(event)) == event
