"""The one wiring point: settings in, adapters out. Nothing is built at import time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from events.codec import AvroCodec
from events.registry import InProcessRegistry, SchemaRegistry
from processors.baseline import BaselineLexicalModel
from processors.ports import IntentSentimentModel
from streams import metrics
from streams.act import Actor, KafkaActionLedger
from streams.settings import Settings
from streams.steps import Steps
from streams.topics import Topics

if TYPE_CHECKING:
    from agent.responder import Responder
    from agent.workflows import Workflows
    from kb.retrieve import Retriever

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
    return Steps(
        build_codec(settings),
        Topics(settings.topic_prefix),
        build_model(settings),
        actor=lambda: build_actor(settings),
    )


def build_workflows_for(settings: Settings, clock: Callable[[], datetime]) -> Workflows:
    """Workflows seeded from ``settings.accounts_path``; mail to ``.eml`` files unless an
    SMTP host is set; ``clock`` is the act stage's (the request's time)."""
    from agent.workflows import FileMailer, build_workflows, load_accounts

    path = settings.accounts_path or Path(
        str(resources.files("agent.workflows").joinpath("sample_accounts.yaml"))
    )
    mailer = None if settings.smtp_host else FileMailer(settings.data_dir / "mail")
    return build_workflows(settings, accounts=load_accounts(str(path)), mailer=mailer, clock=clock)


def build_kb_retriever(settings: Settings) -> Callable[[str], Retriever]:
    """The knowledge-base retriever (built once); a tenant whose knowledge base is empty
    gets ``settings.kb_articles`` ingested on first use."""
    from kb.bootstrap import KbConfig, build_embedder, build_index, build_sink, build_store
    from kb.ingest import ingest
    from kb.retrieve import Retriever

    config = KbConfig(store=settings.kb_store)
    built: list[Retriever] = []
    ready: set[str] = set()

    def for_tenant(tenant: str) -> Retriever:
        if not built:
            embedder = build_embedder(config)
            built.append(Retriever(embedder, build_index(config), build_store(config)))
        retriever = built[0]
        if tenant not in ready:
            if not retriever.store.load(tenant):
                articles = settings.kb_articles or Path(
                    str(resources.files("kb").joinpath("articles"))
                )
                log.info("knowledge base of %s is empty: ingesting %s", tenant, articles)
                ingest(
                    articles,
                    tenant=tenant,
                    embedder=retriever.embedder,
                    index=retriever.index,
                    store=retriever.store,
                    sink=build_sink(config),
                )
            ready.add(tenant)
        return retriever

    return for_tenant


def build_responder_for(settings: Settings) -> Responder:
    from agent.responder import build_responder

    return build_responder(settings)


def build_actor(settings: Settings, *, read_back: bool = False) -> Actor:
    """The act stage's adapters, each built on first use. ``read_back`` (the live worker):
    the record of performed actions is read back from the log, so a request redelivered
    after a crash or a rebalance re-emits its recorded result instead of acting twice."""
    return Actor(
        workflows=lambda clock: build_workflows_for(settings, clock),
        responder=lambda: build_responder_for(settings),
        retriever=build_kb_retriever(settings),
        ledger=(
            (lambda: KafkaActionLedger.from_settings(settings, build_codec(settings)))
            if read_back
            else None
        ),
    )
