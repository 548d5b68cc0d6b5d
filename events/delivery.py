"""Events written by connectors about what reached the customer, and dead letters."""

from __future__ import annotations

from dataclasses import dataclass

from events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyDelivered(Event):
    reply_id: str
    channel: str
    status: str  # delivered | queued | failed
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRejected(Event):
    """Dead letter: the record's original bytes and why it could not be processed."""

    source_topic: str
    source_partition: int
    source_offset: int
    stage: str
    reason: str
    error_type: str
    original_key: bytes | None = None
    original_value: bytes | None = None
