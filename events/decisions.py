"""What the agent decided, and the requests that follow from a decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from events.base import Event
from events.enrichment import ModelInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionMade(Event):
    SCHEMA_VERSION: ClassVar[int] = 2  # v2: ModelInfo.fallbacks

    message_id: str
    action: str  # reply | clarify | escalate | act
    reason: str
    confidence: float
    threshold: float
    sentiment_label: str
    frustration: float
    turn: int
    policy_version: str
    model: ModelInfo
    intent: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyRequested(Event):
    reply_id: str
    message_id: str
    channel: str
    text: str
    kind: str = "answer"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClarificationRequested(Event):
    message_id: str
    question: str
    options: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseEscalated(Event):
    case_id: str
    message_id: str
    reason: str
    priority: str
    summary: str
    confidence: float
    sentiment_trajectory: tuple[float, ...]
    transcript_ref: str
    intent: str | None = None
    tried: tuple[str, ...] = ()
