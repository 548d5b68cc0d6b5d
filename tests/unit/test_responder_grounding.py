"""The grounding check: claims must cite existing passages that hold their specifics."""

from __future__ import annotations

import pytest

from agent.responder import GroundingPolicy, Passage, check_answer
from agent.responder.grounding import hard_facts
from agent.responder.text import citation_ids, split_sentences
from tests.unit.test_responder_kb import ALL, LOCKOUT, RATE, REFUND, TOKEN

T, R, L, F = TOKEN.id, RATE.id, LOCKOUT.id, REFUND.id

GROUNDED = [
    f"Access tokens are valid for 1 hour (3600 seconds) [{T}].",
    f"Access tokens are valid for one hour [{T}]. I hope this helps!",
    f"Refresh the token proactively about 5 minutes before expiry [{T}].",
    f"Request a new token with `grant_type=client_credentials` [{T}].",
    f"Tokens come from `POST https://auth.casestream.io/oauth/token` [{T}].",
    f"Wait at least the `Retry-After` value, then back off (capped at 60 seconds) [{R}].",
    f"Watch the X-RateLimit-Remaining header and slow down [{R}].",
    f"1. Wait 15 minutes and sign in again [{L}].\n2. Or click **Forgot password?** [{L}]",
    f"Ask an administrator to unlock you under **Settings > Users & Permissions > Users** [{L}].",
    f"Refunds of up to 100 EUR are approved directly by support [{F}].",
    f"A refund reaches your statement within 5-10 business days [{F}].",
    f"An account is locked after 5 failed sign-in attempts. [{L}] The lock lasts 15 minutes. [{L}]",
    f"Access tokens are valid for 1 hour [{TOKEN.article_id}].",  # an article id
    f"Here is what to do:\n- Retry the original request once with the new token [{T}].",
    f"Stop sending requests and wait [{R}, {T}].",
]

REJECTED = [
    ("Access tokens are valid for 1 hour (3600 seconds).", "claim without a citation"),
    (f"Access tokens are valid for 2 hours [{T}].", "duration '2 hour'"),
    (f"Access tokens are valid for 1 hour (7200 seconds) [{T}].", "number '7200'"),
    (f"Access tokens are valid for 1 hour [{T.replace('#1', '#7')}].", "unknown passage"),
    ("Access tokens are valid for 1 hour [kb-made-up-article].", "unknown passage"),
    (f"The lock lasts 15 hours [{L}].", "duration '15 hour'"),
    (f"The lock lasts 15 minutes [{T}].", "not in the cited passages"),  # wrong passage
    (f"Send the X-Correlation-Id header with the request [{T}].", "header 'x-correlation-id'"),
    (f"Use `grant_type=password` to get a token [{T}].", "code 'grant_type=password'"),
    (f"Call https://api.casestream.io/v3/tokens to refresh [{T}].", "url"),
    (f"Go to **Settings > Billing > Tokens** to refresh it [{T}].", "menu path"),
    (f"Refunds of up to $500 are approved directly [{F}].", "price 'USD 500.00'"),
    (f"The API answers with error ERR_TOKEN_DEAD [{T}].", "error code"),
    (f"Your invoice is refunded automatically at renewal in full [{T}].", "content support"),
    (f"Premium customers get unlimited overage credits every quarter [{R}].", "content support"),
    ("Sure! Let me know if you have any other questions.", "no grounded claim"),
    ("", "no grounded claim"),
    (
        f"Access tokens are valid for 1 hour [{T}].\n```\nDELETE /v2/everything\n```",
        "is in no passage",
    ),
    (
        f"Access tokens are valid for 1 hour [{T}]. They can be extended to 24 hours by support.",
        "claim without a citation",
    ),
]


@pytest.mark.parametrize("text", GROUNDED)
def test_grounded_answers_pass(text: str) -> None:
    verdict = check_answer(text, ALL)
    assert verdict.ok, verdict.problems
    assert verdict.citations


@pytest.mark.parametrize(("text", "why"), REJECTED)
def test_unsupported_answers_are_rejected_with_a_reason(text: str, why: str) -> None:
    verdict = check_answer(text, ALL)
    assert not verdict.ok
    assert why in verdict.reason, verdict.problems


def test_only_the_cited_passages_count_as_support() -> None:
    text = f"The lock lasts 15 minutes [{L}]."
    assert check_answer(text, ALL).ok
    assert not check_answer(text, (TOKEN,)).ok  # the lockout passage is not in the question


def test_support_threshold_is_a_policy() -> None:
    text = f"Access tokens stay valid for one hour, then integrations must renew them [{T}]."
    assert check_answer(text, ALL, GroundingPolicy(min_support=0.3)).ok
    assert not check_answer(text, ALL, GroundingPolicy(min_support=0.95)).ok


def test_escaped_markup_from_the_prompt_is_compared_unescaped() -> None:
    passage = Passage("p#1", "p", "Header", "Send `Authorization: Bearer <token>` with it.", 0.9)
    assert check_answer("Send `Authorization: Bearer &lt;token>` with it [p#1].", (passage,)).ok


def test_citations_are_parsed_from_brackets_but_not_links() -> None:
    assert citation_ids(f"a [{T}] b [{R}; {L}] c [docs](https://x.io) [Save]") == [T, R, L]


def test_sentences_keep_their_trailing_citation() -> None:
    text = f"First fact. [{T}] Second fact, e.g. this one [{R}].\n1. Step one [{L}]"
    assert split_sentences(text) == [
        f"First fact. [{T}]",
        f"Second fact, e.g. this one [{R}].",
        f"Step one [{L}]",
    ]


def test_hard_facts_of_a_sentence() -> None:
    kinds = {
        (f.kind, f.value)
        for f in hard_facts(
            "Wait `Retry-After` (12 seconds), pay $49.00 or 10 EUR, see invalid_token at /v2/contacts/bulk"
        )
    }
    assert {
        ("duration", "12 second"),
        ("price", "USD 49.00"),
        ("price", "EUR 10.00"),
        ("error code", "invalid_token"),
        ("path", "/v2/contacts/bulk"),
        ("number", "12"),
        ("code", "retry-after"),
    } <= kinds


def test_spelled_numbers_match_digits() -> None:
    assert check_answer(f"The lock lasts fifteen minutes [{L}].", ALL).ok
    assert not check_answer(f"The lock lasts sixteen minutes [{L}].", ALL).ok
