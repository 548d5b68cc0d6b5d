"""The extractive link: verbatim, cited, tone-adapted, or an honest decline."""

from __future__ import annotations

import dataclasses

from agent.responder import ExtractiveResponder, Passage, check_answer
from agent.responder.extractive import Draft
from tests.unit.test_responder_kb import ALL, LOCKOUT, RATE, TOKEN, question


def compose(text: str, *, level: str = "basic", passages: tuple[Passage, ...] = ALL) -> Draft:
    q = question(text, *passages, level=level)
    draft = ExtractiveResponder().compose(q, q.text)
    assert isinstance(draft, Draft), draft
    return draft


def test_a_procedure_comes_as_its_numbered_steps() -> None:
    draft = compose("I'm locked out of my account, what do I do?")
    assert draft.citations == (LOCKOUT.id,)
    assert draft.text.startswith("Here's what our help center says:")
    assert "1. **Wait 15 minutes**" in draft.text and "3. **Ask an administrator" in draft.text


def test_sentences_are_verbatim_and_each_is_cited() -> None:
    draft = compose("why do I get 401 invalid_token after one hour?", level="technical")
    assert draft.text.startswith("From the documentation:")
    assert "Access tokens are valid for **1 hour (3600 seconds)**." in draft.text
    for line in draft.text.splitlines()[1:]:
        assert line.endswith(f"[{TOKEN.id}]")


def test_technical_rate_limit_answer_keeps_headers() -> None:
    draft = compose("how should my integration handle 429 responses?", level="technical")
    assert draft.citations == (RATE.id,)
    assert "`Retry-After`" in draft.text


def test_the_extractive_answer_passes_the_grounding_check() -> None:
    for text in ("locked out", "429 retry backoff", "refund how long", "token expired 401"):
        assert check_answer(compose(text).text, ALL).ok


def test_declines_when_nothing_is_relevant() -> None:
    q = question("What's the weather in Paris tomorrow?")
    assert "no passage relevant enough" in str(ExtractiveResponder().compose(q, q.text))


def test_declines_below_the_confidence_threshold() -> None:
    q = question("I'm locked out", LOCKOUT)
    assert isinstance(ExtractiveResponder(min_confidence=0.5).compose(q, q.text), Draft)
    declined = ExtractiveResponder(min_confidence=0.9).compose(q, q.text)
    assert isinstance(declined, str) and "0.79" in declined


def test_declines_without_passages_or_words() -> None:
    assert isinstance(ExtractiveResponder().compose(question("locked", *()), "locked"), Draft)
    empty = dataclasses.replace(question("locked out"), passages=())
    assert isinstance(ExtractiveResponder().compose(empty, "locked out"), str)
    assert ExtractiveResponder().compose(question("?", intent="x"), "?") == (
        "nothing answerable in the message"
    )
    assert ExtractiveResponder().compose(question("weather?"), "weather?") == (
        "no passage relevant enough (best coverage 0.00, best score 0.82; need 0.2 and 0.35)"
    )
