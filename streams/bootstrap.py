"""The one wiring point: settings in, adapters out. Nothing is built at import time."""

from __future__ import annotations

import logging
from collections.abc import Callable

from events.codec import AvroCodec
from events.registry import InProcessRegistry, SchemaRegistry
from processors.baseline import BaselineLexicalModel
from processors.ports import IntentSentimentModel
from streams import metrics
from streams.settings import Settings
from streams.steps import Steps
from streams.topics import Topics

log = logging.getLogger(__name__)


def build_registry(settings: Settings) -> SchemaRegistry:
    if settings.schema_registry_url:
        from streams.schema_registry import ConfluentRegistry

        return ConfluentRegistry(settings.schema_registry_url)
    return InProcessRegistry()


def _local(settings: Settings) -> IntentSentimentModel:
    from models.adapters.local import LocalEnrichModel

    return LocalEnrichModel(
        settings.model_variant,
        max_batch=settings.model_max_batch,
        intra_op_num_threads=settings.model_threads,
    )


def _triton(settings: Settings) -> IntentSentimentModel:
    from models.adapters.triton_model import TritonEnrichModel

    return TritonEnrichModel(
        settings.triton_url,
        settings.triton_model,
        timeout_s=settings.model_timeout_s,
        max_batch=settings.model_max_batch,
    )


MODEL_ADAPTERS: dict[str, Callable[[Settings], IntentSentimentModel]] = {
    "baseline": lambda _: BaselineLexicalModel(),
    "local": _local,
    "triton": _triton,
}


def build_model(settings: Settings) -> IntentSentimentModel:
    """One adapter, or a fallback chain when ``settings.model`` names several."""
    names = [n.strip() for n in settings.model.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODEL_ADAPTERS]
    if not names or unknown:
        raise ValueError(
            f"unknown model adapter {settings.model!r}; choose from {sorted(MODEL_ADAPTERS)}"
            " (comma-separated for a fallback chain)"
        )
    if len(names) == 1:
        return MODEL_ADAPTERS[names[0]](settings)
    from models.chain import CircuitBreaker, FallbackChain, Link, Unavailable

    links = []
    for i, name in enumerate(names):
        try:
            model = MODEL_ADAPTERS[name](settings)
        except Exception as exc:  # a link that cannot load is passed over, visibly
            log.warning("model adapter %s unavailable: %s", name, exc)
            model = Unavailable(name, exc)
        last = i == len(names) - 1
        links.append(
            Link(
                name,
                model,
                timeout_s=None if last else settings.model_timeout_s,
                breaker=CircuitBreaker(
                    settings.model_breaker_failures, settings.model_breaker_reset_s
                ),
            )
        )

    def on_fallback(link: str, to: str, reason: str) -> None:
        metrics.FALLBACKS.labels("model", link, to, reason).inc()

    return FallbackChain(links, on_fallback=on_fallback)


def build_codec(settings: Settings) -> AvroCodec:
    return AvroCodec(build_registry(settings))


def build_steps(settings: Settings) -> Steps:
    return Steps(build_codec(settings), Topics(settings.topic_prefix), build_model(settings))
