"""Pure conversion of decoded records into rows of ``analytics.events``, and the order
in which a batch of rows may be written without ever skipping a record.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Callable, Sequence
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


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def event_json(event: Event) -> str:
    """The whole event as JSON: the Avro record, times in ISO 8601, bytes in base64."""
    return json.dumps(to_record(event), default=_json_default, ensure_ascii=False)


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


def prefix_safe_runs(rows: Sequence[EventRow]) -> list[list[EventRow]]:
    """Split ``rows`` (in read order) into runs of one day partition each, so that
    writing the runs one after the other leaves, after a crash at any point, a prefix of
    every (topic, partition)'s rows stored.

    ClickHouse writes an INSERT as one part per partition and only a single part is
    atomic. Positions are max(offset) + 1 of what is stored, so a later record stored
    without an earlier one of the same partition would be skipped for ever; this order
    makes that impossible. One run per day in the batch when the days of each
    (topic, partition) do not go backwards (the usual case).
    """
    queues: dict[tuple[str, int], deque[EventRow]] = {}
    for row in rows:
        queues.setdefault((row["source_topic"], row["source_partition"]), deque()).append(row)
    runs: list[list[EventRow]] = []
    while queues:
        day = min(q[0]["occurred_at"][:10] for q in queues.values())
        run: list[EventRow] = []
        for key in list(queues):
            queue = queues[key]
            while queue and queue[0]["occurred_at"][:10] == day:
                run.append(queue.popleft())
            if not queue:
                del queues[key]
        runs.append(run)
    return runs
