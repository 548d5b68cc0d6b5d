"""The one wiring point of the knowledge base: which index, sink and embedder to use.

Local by default (numpy index and passage catalogue under ``<store>``, events appended to
``<store>/knowledge.avro``); Pinecone when a host is given; Kafka when a bootstrap is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kb.index import LocalVectorIndex, VectorIndex
from kb.ingest import TextEncoder
from kb.retrieve import Retriever
from kb.sink import ArchiveSink, EventSink, KafkaSink
from kb.store import PassageStore

DEFAULT_STORE = Path(".data/kb")


@dataclass(frozen=True, slots=True)
class KbConfig:
    store: Path = DEFAULT_STORE
    pinecone_host: str | None = None
    pinecone_api_key: str | None = None
    kafka_bootstrap: str | None = None
    topic_prefix: str = "casestream"
    embedder_variant: str = "int8"


def build_index(config: KbConfig) -> VectorIndex:
    if config.pinecone_host:
        from kb.pinecone_index import PineconeIndex

        if not config.pinecone_api_key:
            raise ValueError("a Pinecone host needs an API key (CASESTREAM_PINECONE_API_KEY)")
        return PineconeIndex(config.pinecone_host, config.pinecone_api_key)
    return LocalVectorIndex(config.store / "index")


def build_store(config: KbConfig) -> PassageStore:
    return PassageStore(config.store / "passages")


def build_sink(config: KbConfig) -> EventSink:
    if config.kafka_bootstrap:
        return KafkaSink(config.kafka_bootstrap, config.topic_prefix)
    return ArchiveSink(config.store / "knowledge.avro", config.topic_prefix)


def build_embedder(config: KbConfig) -> TextEncoder:
    from models.embedder import Embedder

    return Embedder.load(config.embedder_variant)


def build_retriever(config: KbConfig, embedder: TextEncoder | None = None) -> Retriever:
    """The retriever the responder uses (loads the embedder unless one is given)."""
    return Retriever(embedder or build_embedder(config), build_index(config), build_store(config))
