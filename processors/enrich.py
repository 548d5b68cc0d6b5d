"""Enrichment: turn a received message plus a model's prediction into MessageEnriched."""

from __future__ import annotations

from events.base import caused_envelope
from events.conversation import MessageReceived
from events.enrichment import MessageEnriched, ModelInfo
from processors.ports import Prediction

PRODUCER = "processor.enrich"


def enrich(message: MessageReceived, prediction: Prediction, model: ModelInfo) -> MessageEnriched:
    """Pure: the enriched event for ``message`` given what the model predicted."""
    flags = tuple(sorted({*prediction.flags, *message.flags}))
    return MessageEnriched(
        envelope=caused_envelope(
            message.envelope, MessageEnriched, producer=PRODUCER, producer_version=model.version
        ),
        message_id=message.message_id,
        channel=message.channel,
        text=message.text,
        language=prediction.language,
        intents=prediction.intents,
        sentiment=prediction.sentiment,
        model=model,
        flags=flags,
    )
