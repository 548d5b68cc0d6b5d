"""Ports the pure processors depend on, as data-in/data-out protocols.

A model adapter may do I/O (Triton over gRPC) or not (the lexical baseline); the
processors only ever see the :class:`Prediction` it returned, which is recorded in the
``MessageEnriched`` event so that replay never calls a model again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from events.enrichment import IntentScore, ModelInfo, Sentiment


@dataclass(frozen=True, slots=True)
class Prediction:
    """Everything a model says about one text."""

    intents: tuple[IntentScore, ...]
    sentiment: Sentiment
    language: str = "und"
    flags: tuple[str, ...] = ()
    #: The model that produced this prediction when it is not the adapter's own
    #: ``info`` (a fallback chain answers from whichever link worked).
    model: ModelInfo | None = None


class IntentSentimentModel(Protocol):
    """Scores texts for intent, sentiment, language and risk flags."""

    @property
    def info(self) -> ModelInfo:
        """Name, version and digest recorded in every enriched event."""
        ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in order."""
        ...
