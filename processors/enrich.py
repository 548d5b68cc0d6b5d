"""Enrichment: turn a received message plus a model's prediction into MessageEnriched."""

from __future__ import annotations

from events.base import caused_envelope
from events.conversation import MessageReceived
from events.enrichment import MessageEnriched, ModelInfo
from processors.ports import Prediction
from processors.risk import risk_flags

PRODUCER = "processor.enrich"


def enrich(message: MessageReceived, prediction: Prediction, model: ModelInfo) -> MessageEnriched:
    """Pure: the enriched event for ``message`` given what the model predicted.

    ``model`` is the adapter's own identity; a prediction that names another model
    (a fallback link answered) records that one, with the links passed over. The text's
    input-attack findings (:mod:`processors.risk`) are added to the model's flags.
    """
    used = prediction.model or model
    fallback = ("model_fallback",) if used.fallbacks else ()
    flags = tuple(sorted({*prediction.flags, *message.flags, *fallback, *risk_flags(message.text)}))
    return MessageEnriched(
        envelope=caused_envelope(
            message.envelope, MessageEnriched, producer=PRODUCER, producer_version=used.version
        ),
        message_id=message.message_id,
        channel=message.channel,
        text=message.text,
        language=prediction.language,
        intents=prediction.intents,
        sentiment=prediction.sentiment,
        model=used,
        flags=flags,
    )
