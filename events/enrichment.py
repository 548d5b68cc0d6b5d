"""Model findings about a customer message."""

from __future__ import annotations

from dataclasses import dataclass

from events.base import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentScore:
    label: str
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Sentiment:
    label: str
    valence: float
    frustration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEnriched(Event):
    message_id: str
    channel: str
    text: str
    language: str
    intents: tuple[IntentScore, ...]
    sentiment: Sentiment
    model: ModelInfo
    flags: tuple[str, ...] = ()
