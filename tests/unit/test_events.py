"""Schemas and classes agree; every type round-trips through the Confluent-framed codec."""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import typing
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.actions import ActionCompleted, ActionRequested
from events.base import Event, caused_envelope
from events.catalog import EVENT_CLASSES, current_entries, schema_files
from events.codec import MAGIC, AvroCodec, DecodeError
from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    FeedbackReceived,
)
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.delivery import EventRejected, ReplyDelivered
from events.knowledge import KnowledgeIngested
from tests.factories import MODEL, enriched, received

CODEC = AvroCodec()


def samples() -> list[Event]:
    msg = received("I forgot my password")
    enr = enriched("I forgot my password", [("ACCOUNT/Password", 0.93), ("ACCOUNT/Access", 0.05)])

    def env(kind: type[Event]) -> typing.Any:
        return caused_envelope(enr.envelope, kind, producer="test", producer_version="1")

    return [
        ConversationStarted(envelope=env(ConversationStarted), channel="web_chat", locale="en-GB"),
        msg,
        enr,
        DecisionMade(
            envelope=env(DecisionMade),
            message_id="m",
            action="reply",
            reason="confident_intent",
            intent="ACCOUNT/Password",
            confidence=0.93,
            threshold=0.9,
            sentiment_label="neutral",
            frustration=0.0,
            turn=1,
            policy_version="p",
            model=MODEL,
        ),
        ReplyRequested(
            envelope=env(ReplyRequested),
            reply_id="r",
            message_id="m",
            channel="web_chat",
            text="hello",
            kind="answer",
        ),
        ReplyDelivered(
            envelope=env(ReplyDelivered), reply_id="r", channel="web_chat", status="delivered"
        ),
        ClarificationRequested(
            envelope=env(ClarificationRequested),
            message_id="m",
            question="which?",
            options=("a", "b"),
        ),
        CaseEscalated(
            envelope=env(CaseEscalated),
            case_id="c",
            message_id="m",
            reason="x",
            priority="high",
            summary="s",
            confidence=0.5,
            sentiment_trajectory=(-0.5, -0.9),
            transcript_ref="t",
            intent=None,
            tried=("reply:none",),
        ),
        ConversationClosed(envelope=env(ConversationClosed), reason="resolved", resolved=True),
        FeedbackReceived(envelope=env(FeedbackReceived), rating=5, comment="great"),
        EventRejected(
            envelope=env(EventRejected),
            source_topic="t",
            source_partition=1,
            source_offset=7,
            stage="decode",
            reason="bad",
            error_type="DecodeError",
            original_key=b"k",
            original_value=b"\x00\xff",
        ),
        KnowledgeIngested(
            envelope=env(KnowledgeIngested),
            article_id="kb-api-rate-limits",
            version=2,
            title="API rate limits",
            product_area="TECHNICAL/API",
            updated=date(2026, 9, 2),
            content_sha256="0" * 64,
            status="current",
            passage_ids=("kb-api-rate-limits@v2#0",),
            notes=("supersedes v1",),
        ),
        ActionRequested(
            envelope=env(ActionRequested),
            action_id="a",
            message_id="m",
            kind="password_reset",
            params={"email": "dana@acme.example"},
            intent="ACCOUNT/Password",
            technical_level="basic",
            channel="email",
        ),
        ActionCompleted(
            envelope=env(ActionCompleted),
            action_id="a",
            message_id="m",
            kind="answer",
            status="completed",
            outcome="answered",
            details={"grounded": "true"},
            reason="",
            citations=("kb-api-rate-limits@v2#0",),
            link="extractive",
        ),
    ]


def test_every_event_type_has_a_sample_and_a_schema_file() -> None:
    assert sorted(type(e).__name__ for e in samples()) == sorted(EVENT_CLASSES)
    assert schema_files() == sorted(EVENT_CLASSES)


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_round_trip(event: Event) -> None:
    data = CODEC.encode(event, "topic")
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == MAGIC
    assert schema_id == current_entries()[type(event).__name__].schema_id
    assert CODEC.decode(data) == event
    assert CODEC.encode(CODEC.decode(data), "topic") == data  # byte-identical


@pytest.mark.parametrize("name", sorted(EVENT_CLASSES))
def test_class_fields_match_schema_fields(name: str) -> None:
    entry = current_entries()[name]
    schema_fields = [f["name"] for f in entry.raw["fields"]]
    class_fields = [f.name for f in dataclasses.fields(EVENT_CLASSES[name])]
    assert sorted(schema_fields) == sorted(class_fields)
    assert entry.raw["name"] == name  # class name = record name = wire type
    assert entry.version == EVENT_CLASSES[name].SCHEMA_VERSION
    envelope = entry.raw["fields"][0]["type"]
    assert [f["name"] for f in envelope["fields"]] == [
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "tenant_id",
        "conversation_id",
        "correlation_id",
        "causation_id",
        "producer",
        "producer_version",
    ]
    occurred = next(f for f in envelope["fields"] if f["name"] == "occurred_at")
    assert occurred["type"] == {"type": "long", "logicalType": "timestamp-millis"}


def test_schema_ids_are_unique() -> None:
    ids = [e.schema_id for e in current_entries().values()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x00\x00\xc9hello", "magic byte"),
        (b"\x00\x00\x00\x99\x99hello", "not registered"),
        (b"\x00\x00\x00\x00\xc9\xff\xff\xff", "does not match"),
    ],
)
def test_decode_errors_say_why(data: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        CODEC.decode(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_never_crashes_the_decoder(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        CODEC.decode(data)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.booleans(), st.lists(st.text(max_size=10), max_size=3))
def test_message_received_round_trips_any_text(
    text: str, truncated: bool, flags: list[str]
) -> None:
    msg = dataclasses.replace(received(text), truncated=truncated, flags=tuple(flags))
    assert CODEC.decode(CODEC.encode(msg)) == msg
