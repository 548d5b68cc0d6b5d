"""Typed, immutable events (Avro schemas in ``events/schemas/``) and their codec."""

from events.base import (
    Envelope,
    Event,
    caused_envelope,
    conversation_key,
    derive_event_id,
    origin_envelope,
)
from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    FeedbackReceived,
    MessageReceived,
)
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.delivery import EventRejected, ReplyDelivered
from events.enrichment import IntentScore, MessageEnriched, ModelInfo, Sentiment

__all__ = [
    "CaseEscalated",
    "ClarificationRequested",
    "ConversationClosed",
    "ConversationStarted",
    "DecisionMade",
    "Envelope",
    "Event",
    "EventRejected",
    "FeedbackReceived",
    "IntentScore",
    "MessageEnriched",
    "MessageReceived",
    "ModelInfo",
    "ReplyDelivered",
    "ReplyRequested",
    "Sentiment",
    "caused_envelope",
    "conversation_key",
    "derive_event_id",
    "origin_envelope",
]
