"""Pure conversion of decoded records into rows of ``analytics.events``: the readable
definition of every column (the ingest path derives the same columns inside ClickHouse,
see ``columns.py`` and ``schema.sql``; a unit test keeps them equal)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypedDict

from events.base import Event, to_record
from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    FeedbackReceived,
    MessageReceived,
)
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.delivery import EventRejected, ReplyDelivered
from events.enrichment import MessageEnriched
from projections.analytics.sql import ch_datetime
from streams.steps import Record


class EventRow(TypedDict):
    """One row of ``analytics.events`` (see ``schema.sql``), ready for JSONEachRow.

    Columns that do not apply to an event type are ``''`` (strings) or ``None``
    (numbers), so aggregates such as ``avg(frustration)`` skip them.
    """

    event_id: str
    event_type: str
    schema_version: int
    tenant_id: str
    conversation_id: str
    occurred_at: str
    correlation_id: str
    causation_id: str
    producer: str
    message_id: str
    channel: str
    action: str
    reason: str
    intent: str
    confidence: float | None
    sentiment_label: str
    frustration: float | None
    valence: float | None
    rating: int | None
    resolved: bool | None
    priority: str
    case_id: str
    reply_kind: str
    delivery_status: str
    model_name: str
    model_version: str
    record_time: str
    source_topic: str
    source_partition: int
    source_offset: int
    payload: str


def _message_enriched(e: MessageEnriched) -> dict[str, Any]:
    top = e.intents[0] if e.intents else None
    return {
        "message_id": e.message_id,
        "channel": e.channel,
        "intent": top.label if top else "",
        "confidence": top.score if top else None,
        "sentiment_label": e.sentiment.label,
        "frustration": e.sentiment.frustration,
        "valence": e.sentiment.valence,
        "model_name": e.model.name,
        "model_version": e.model.version,
    }


def _decision_made(e: DecisionMade) -> dict[str, Any]:
    return {
        "message_id": e.message_id,
        "action": e.action,
        "reason": e.reason,
        "intent": e.intent or "",
        "confidence": e.confidence,
        "sentiment_label": e.sentiment_label,
        "frustration": e.frustration,
        "model_name": e.model.name,
        "model_version": e.model.version,
    }


def _case_escalated(e: CaseEscalated) -> dict[str, Any]:
    return {
        "message_id": e.message_id,
        "reason": e.reason,
        "priority": e.priority,
        "case_id": e.case_id,
        "intent": e.intent or "",
        "confidence": e.confidence,
    }


_COLUMNS: dict[type[Event], Callable[[Any], dict[str, Any]]] = {
    ConversationStarted: lambda e: {"channel": e.channel},
    MessageReceived: lambda e: {"message_id": e.message_id, "channel": e.channel},
    MessageEnriched: _message_enriched,
    DecisionMade: _decision_made,
    ClarificationRequested: lambda e: {"message_id": e.message_id},
    ReplyRequested: lambda e: {
        "message_id": e.message_id,
        "channel": e.channel,
        "reply_kind": e.kind,
    },
    CaseEscalated: _case_escalated,
    ReplyDelivered: lambda e: {"channel": e.channel, "delivery_status": e.status},
    ConversationClosed: lambda e: {"reason": e.reason, "resolved": e.resolved},
    FeedbackReceived: lambda e: {"rating": e.rating},
    EventRejected: lambda e: {"reason": e.reason},
}


def json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _stdlib_dumps(record: Any) -> str:
    return json.dumps(record, default=json_default, ensure_ascii=False, separators=(",", ":"))


try:  # orjson (3x faster; present in the environment) gives the same compact JSON
    import orjson

    def dumps_payload(record: Any) -> str:
        """An Avro record dict as compact JSON: times ISO 8601, bytes base64."""
        return orjson.dumps(record, default=json_default).decode("utf-8")

except ImportError:  # pragma: no cover - the stdlib encoder, same text
    dumps_payload = _stdlib_dumps


def event_json(event: Event) -> str:
    """The whole event as JSON: the Avro record, times in ISO 8601, bytes in base64."""
    return dumps_payload(to_record(event))


def row_for(record: Record, event: Event) -> EventRow:
    """The row for ``event`` as read at ``record``'s position."""
    env = event.envelope
    row = EventRow(
        event_id=env.event_id,
        event_type=type(event).__name__,
        schema_version=env.schema_version,
        tenant_id=env.tenant_id,
        conversation_id=env.conversation_id,
        occurred_at=ch_datetime(env.occurred_at),
        correlation_id=env.correlation_id,
        causation_id=env.causation_id or "",
        producer=env.producer,
        message_id="",
        channel="",
        action="",
        reason="",
        intent="",
        confidence=None,
        sentiment_label="",
        frustration=None,
        valence=None,
        rating=None,
        resolved=None,
        priority="",
        case_id="",
        reply_kind="",
        delivery_status="",
        model_name="",
        model_version="",
        record_time=ch_datetime(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        payload=event_json(event),
    )
    columns = _COLUMNS.get(type(event))
    if columns is not None:
        row.update(columns(event))  # type: ignore[typeddict-item]
    return row
