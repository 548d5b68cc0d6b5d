"""Model findings about a customer message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEnriched(Event):
    SCHEMA_VERSION: ClassVar[int] = 2  # v2: ModelInfo.fallbacks

    message_id: str
    channel: str
    text: str
    language: str
    intents: tuple[IntentScore, ...]
    sentiment: Sentiment
    model: ModelInfo
    flags: tuple[str, ...] = ()
