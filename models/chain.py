"""A fallback chain of model adapters with a timeout and a circuit breaker per link.

The chain is itself an :class:`~processors.ports.IntentSentimentModel`: it asks its
links in order (typically ``triton -> local -> baseline``) and answers with the first
that succeeds in time. Each prediction names the model that produced it and the links
passed over (``"triton: timeout after 2.0s"``), so the ``MessageEnriched`` event records
exactly which model decided and replay never guesses. A link that keeps failing is
skipped without being called until its breaker lets one trial call through again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from events.enrichment import ModelInfo
from processors.ports import IntentSentimentModel, Prediction

#: ``on_fallback(from_link, to_link, reason)``: hook for metrics.
FallbackHook = Callable[[str, str, str], None]


class CircuitBreaker:
    """Closed -> open after ``failures`` consecutive failures -> half-open after ``reset_s``.

    While open, :meth:`allow` is false; once ``reset_s`` passed it lets one trial call
    through (half-open): success closes the circuit, failure opens it again.
    """

    def __init__(
        self,
        failures: int = 3,
        reset_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.reset_s:
                return "half-open"
            return "open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self._trial or self._clock() - self._opened_at < self.reset_s:
                return False
            self._trial = True
            return True

    def success(self) -> None:
        with self._lock:
            self._count, self._opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self._count += 1
            self._trial = False
            if self._opened_at is not None or self._count >= self.failures:
                self._opened_at = self._clock()


@dataclass
class Link:
    """One adapter in the chain. ``timeout_s`` None = wait as long as it takes."""

    name: str
    model: IntentSentimentModel
    timeout_s: float | None = None
    breaker: CircuitBreaker = dataclasses.field(default_factory=CircuitBreaker)


class FallbackChain:
    """The first link that answers in time wins; the last link should never fail."""

    def __init__(self, links: Sequence[Link], on_fallback: FallbackHook | None = None) -> None:
        if not links:
            raise ValueError("a fallback chain needs at least one link")
        self.links = list(links)
        self._on_fallback = on_fallback
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=len(self.links), thread_name_prefix="model-link"
        )

    @property
    def info(self) -> ModelInfo:
        """The first choice; predictions carry the model that actually answered."""
        return self.links[0].model.info

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        passed_over: list[str] = []
        for i, link in enumerate(self.links):
            last = i == len(self.links) - 1
            if not link.breaker.allow() and not last:
                self._fall(link, i, "circuit open", passed_over)
                continue
            try:
                predictions = self._call(link, texts)
            except Exception as exc:
                link.breaker.failure()
                if last:
                    raise
                self._fall(link, i, _reason(exc, link), passed_over)
                continue
            link.breaker.success()
            return _stamped(predictions, link.model.info, passed_over)
        raise AssertionError("unreachable: the last link either answers or raises")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _call(self, link: Link, texts: Sequence[str]) -> list[Prediction]:
        if link.timeout_s is None:
            predictions = link.model.predict(texts)
        else:
            future = self._pool.submit(link.model.predict, texts)
            predictions = future.result(timeout=link.timeout_s)
        if len(predictions) != len(texts):
            raise ValueError(f"{len(predictions)} predictions for {len(texts)} texts")
        return predictions

    def _fall(self, link: Link, index: int, reason: str, passed_over: list[str]) -> None:
        passed_over.append(f"{link.name}: {reason}")
        if self._on_fallback is not None:
            self._on_fallback(link.name, self.links[index + 1].name, reason.split(" ")[0])


def _reason(exc: BaseException, link: Link) -> str:
    if isinstance(exc, concurrent.futures.TimeoutError | TimeoutError):
        return f"timeout after {link.timeout_s}s"
    return f"error {type(exc).__name__}: {str(exc)[:200]}"


def _stamped(
    predictions: list[Prediction], info: ModelInfo, passed_over: list[str]
) -> list[Prediction]:
    def named(p: Prediction) -> Prediction:
        used = p.model or info
        if passed_over:
            used = dataclasses.replace(used, fallbacks=(*passed_over, *used.fallbacks))
        return dataclasses.replace(p, model=used)

    return [named(p) for p in predictions]


class Unavailable:
    """Stands in for an adapter that could not be built; every call says why."""

    def __init__(self, name: str, error: BaseException) -> None:
        self._info = ModelInfo(name=f"unavailable-{name}", version="0", sha256="")
        self._error = f"{name} could not be loaded: {type(error).__name__}: {error}"

    @property
    def info(self) -> ModelInfo:
        return self._info

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        raise RuntimeError(self._error)
