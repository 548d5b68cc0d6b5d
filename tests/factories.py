"""Event builders and hypothesis strategies shared by the tests (no mocks: real values)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from events.base import derive_event_id, origin_envelope
from events.conversation import MessageReceived
from events.enrichment import IntentScore, MessageEnriched, ModelInfo, Sentiment
from processors.enrich import enrich
from processors.ports import Prediction
from processors.taxonomy import all_intent_labels

#: Customer messages the benchmarks send (varied intents and moods).
SAMPLE_TEXTS = [
    "I forgot my password",
    "How do I export data?",
    "my invoice is wrong",
    "I'm getting a 401 error when calling the REST API",
    "This is unacceptable!",
    "thanks, that helped",
    "can you help me with the thing",
    "I need a refund",
    "the report dashboard is slow",
    "how do I set up two-factor authentication?",
]

MODEL = ModelInfo(name="test-model", version="1", sha256="0" * 64)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def received(
    text: str, *, conversation: str = "c1", tenant: str = "t1", index: int = 0
) -> MessageReceived:
    return MessageReceived(
        envelope=origin_envelope(
            MessageReceived,
            tenant_id=tenant,
            conversation_id=conversation,
            producer="test",
            producer_version="0",
            event_id=derive_event_id(f"{tenant}/{conversation}", "MessageReceived", index),
            occurred_at=T0 + timedelta(seconds=index),
        ),
        message_id=f"{conversation}-m{index}",
        channel="web_chat",
        text=text,
        original_length=len(text),
        truncated=False,
    )


def enriched(
    text: str,
    intents: list[tuple[str, float]],
    *,
    sentiment: tuple[str, float, float] = ("neutral", 0.0, 0.0),
    flags: tuple[str, ...] = (),
    conversation: str = "c1",
    index: int = 0,
) -> MessageEnriched:
    label, valence, frustration = sentiment
    prediction = Prediction(
        intents=tuple(IntentScore(label=lbl, score=s) for lbl, s in intents),
        sentiment=Sentiment(label=label, valence=valence, frustration=frustration),
        language="en",
        flags=flags,
    )
    return enrich(received(text, conversation=conversation, index=index), prediction, MODEL)


scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False).map(lambda x: round(x, 4))
intent_lists = st.lists(
    st.tuples(st.sampled_from(all_intent_labels()), scores), max_size=4, unique_by=lambda t: t[0]
).map(lambda xs: sorted(xs, key=lambda t: -t[1]))
sentiments = st.tuples(
    st.sampled_from(["negative", "neutral", "positive"]),
    st.floats(min_value=-1, max_value=1, allow_nan=False).map(lambda x: round(x, 4)),
    scores,
)
flag_sets = st.lists(
    st.sampled_from(["human_request", "sql_injection", "prompt_injection", "truncated"]),
    max_size=2,
    unique=True,
).map(tuple)


@st.composite
def conversations(draw: st.DrawFn, max_messages: int = 8) -> list[MessageEnriched]:
    """A random conversation of enriched messages (one tenant, one conversation)."""
    n = draw(st.integers(min_value=1, max_value=max_messages))
    texts = st.text(min_size=0, max_size=40)
    return [
        enriched(
            draw(texts),
            draw(intent_lists),
            sentiment=draw(sentiments),
            flags=draw(flag_sets),
            index=i,
        )
        for i in range(n)
    ]
