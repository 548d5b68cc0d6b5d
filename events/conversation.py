"""Events that come from the customer's side of a conversation."""

from __future__ import annotations

from dataclasses import dataclass

from events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationStarted(Event):
    channel: str
    customer_id: str | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived(Event):
    message_id: str
    channel: str
    text: str
    original_length: int
    truncated: bool
    flags: tuple[str, ...] = ()
    customer_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationClosed(Event):
    reason: str
    resolved: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackReceived(Event):
    rating: int
    comment: str | None = None
