"""The one wiring point: settings in, adapters out. Nothing is built at import time."""

from __future__ import annotations

from events.codec import AvroCodec
from events.registry import InProcessRegistry, SchemaRegistry
from processors.baseline import BaselineLexicalModel
from processors.ports import IntentSentimentModel
from streams.settings import Settings
from streams.steps import Steps
from streams.topics import Topics


def build_registry(settings: Settings) -> SchemaRegistry:
    if settings.schema_registry_url:
        from streams.schema_registry import ConfluentRegistry

        return ConfluentRegistry(settings.schema_registry_url)
    return InProcessRegistry()


def build_model(settings: Settings) -> IntentSentimentModel:
    models = {"baseline": BaselineLexicalModel}
    try:
        return models[settings.model]()
    except KeyError:
        raise ValueError(
            f"unknown model adapter {settings.model!r}; choose one of {sorted(models)}"
        ) from None


def build_codec(settings: Settings) -> AvroCodec:
    return AvroCodec(build_registry(settings))


def build_steps(settings: Settings) -> Steps:
    return Steps(build_codec(settings), Topics(settings.topic_prefix), build_model(settings))
