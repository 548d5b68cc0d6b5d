"""``kb ingest``: articles in, passages indexed, one ``KnowledgeIngested`` per version out.

Steps: parse and validate every file (invalid ones reported and skipped); resolve
versions of the same id (the highest valid version is current, older ones superseded:
kept in the index and the catalogue with their status, never served); chunk and embed
every version; flag near-duplicates among current versions of different ids (the
newer article is kept, the other becomes ``duplicate_of:<kept id>``); upsert the
passages into the tenant's namespace and drop passages no longer present; write the
passage catalogue; record the events. Unchanged input gives the same event ids, the same
vector ids and the same catalogue, so re-ingest is idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from events.base import derive_event_id, origin_envelope
from events.knowledge import (
    STATUS_CURRENT,
    STATUS_DUPLICATE_PREFIX,
    STATUS_SUPERSEDED,
    KnowledgeIngested,
)
from kb.articles import Article, InvalidFile, load_directory
from kb.chunking import Passage, chunk_article
from kb.dedup import DuplicatePair, article_vector, similar_pairs
from kb.index import FloatArray, VectorIndex, VectorRecord
from kb.sink import EventSink
from kb.store import PassageStore, StoredPassage

PRODUCER = "casestream.kb.ingest"
#: Bumped when chunking or the event's derivation changes (it is part of the event id).
INGEST_VERSION = "1"
DEFAULT_TENANT = "demo"


class TextEncoder(Protocol):
    """What ingest and retrieval need of the embedder (``models.embedder.Embedder``)."""

    #: the graph's sha256: names its embeddings in the process-wide memo ("" = never memoised)
    @property
    def sha256(self) -> str: ...

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class Superseded:
    article_id: str
    version: int
    by_version: int
    path: Path


@dataclass
class IngestReport:
    """What one ingest did; ``summary()`` is what the CLI prints."""

    tenant: str
    articles: int = 0
    versions: int = 0
    passages: int = 0
    superseded: list[Superseded] = field(default_factory=list)
    duplicates: list[DuplicatePair] = field(default_factory=list)
    invalid: list[InvalidFile] = field(default_factory=list)
    events: list[KnowledgeIngested] = field(default_factory=list)
    events_recorded: int = 0
    removed_passages: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "articles": self.articles,
            "versions": self.versions,
            "passages": self.passages,
            "superseded": len(self.superseded),
            "duplicates": len(self.duplicates),
            "invalid": len(self.invalid),
            "events": len(self.events),
            "events_recorded": self.events_recorded,
            "removed_passages": self.removed_passages,
            "seconds": round(self.seconds, 2),
        }


def resolve_versions(articles: list[Article]) -> tuple[dict[str, Article], list[Superseded]]:
    """The current version of each id, and every older version it supersedes."""
    current: dict[str, Article] = {}
    for article in articles:
        best = current.get(article.article_id)
        if best is None or article.version > best.version:
            current[article.article_id] = article
    superseded = [
        Superseded(a.article_id, a.version, current[a.article_id].version, a.path)
        for a in articles
        if a is not current[a.article_id]
    ]
    return current, sorted(superseded, key=lambda s: (s.article_id, s.version))


def _keeps(a: Article, b: Article) -> bool:
    """Of two near-duplicates, whether ``a`` is the one to serve (newest, then longest)."""
    return (a.updated, len(a.body), b.article_id) > (b.updated, len(b.body), a.article_id)


def find_duplicates(
    current: list[Article], passages: dict[str, list[Passage]], vectors: dict[str, FloatArray]
) -> list[DuplicatePair]:
    """Near-duplicate pairs among ``current`` (different ids), the kept article first."""
    if len(current) < 2:
        return []
    whole = np.stack([article_vector(vectors[a.key]) for a in current])
    pairs = similar_pairs([a.article_id for a in current], [a.body for a in current], whole)
    out = []
    for i, j, jac, cos in pairs:
        a, b = current[i], current[j]
        kept, dropped = (a, b) if _keeps(a, b) else (b, a)
        out.append(DuplicatePair(kept.article_id, dropped.article_id, jac, cos))
    return out


def _event(
    tenant: str, article: Article, status: str, passage_ids: Sequence[str], notes: Sequence[str]
) -> KnowledgeIngested:
    cause = f"kb/{INGEST_VERSION}/{tenant}/{article.key}/{article.sha256}/{status}"
    return KnowledgeIngested(
        envelope=origin_envelope(
            KnowledgeIngested,
            tenant_id=tenant,
            conversation_id=f"kb:{article.article_id}",
            producer=PRODUCER,
            producer_version=INGEST_VERSION,
            event_id=derive_event_id(cause, KnowledgeIngested.event_type()),
        ),
        article_id=article.article_id,
        version=article.version,
        title=article.title,
        product_area=article.product_area,
        updated=article.updated,
        content_sha256=article.sha256,
        status=status,
        passage_ids=tuple(passage_ids),
        notes=tuple(notes),
    )


def ingest(
    directory: Path,
    *,
    tenant: str,
    embedder: TextEncoder,
    index: VectorIndex,
    store: PassageStore,
    sink: EventSink,
    progress: Callable[[str], None] | None = None,
) -> IngestReport:
    """Ingest every ``*.md`` under ``directory`` into ``tenant``'s knowledge base."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    report = IngestReport(tenant=tenant)
    articles, report.invalid = load_directory(directory)
    for bad in report.invalid:
        say(f"invalid: {bad.path.name}: {bad.reason} (skipped)")
    say(f"parsed {len(articles)} article versions, {len(report.invalid)} invalid")

    current, report.superseded = resolve_versions(articles)
    passages = {a.key: chunk_article(a) for a in articles}
    flat = [p for a in articles for p in passages[a.key]]
    say(f"embedding {len(flat)} passages")
    matrix = embedder.encode([p.embedding_text() for p in flat]) if flat else None
    vectors: dict[str, FloatArray] = {}
    at = 0
    for a in articles:
        n = len(passages[a.key])
        assert matrix is not None
        vectors[a.key] = matrix[at : at + n]
        at += n

    report.duplicates = find_duplicates(list(current.values()), passages, vectors)
    status: dict[str, str] = {a.key: STATUS_CURRENT for a in current.values()}
    notes: dict[str, list[str]] = {a.key: [] for a in articles}
    for s in report.superseded:
        key = f"{s.article_id}@v{s.version}"
        status[key] = STATUS_SUPERSEDED
        notes[key].append(f"superseded by v{s.by_version}")
        newer = current[s.article_id]
        notes[newer.key].append(f"supersedes v{s.version}")
        say(f"conflict: {s.article_id} v{s.version} superseded by v{s.by_version}")
    for d in report.duplicates:
        kept, dropped = current[d.kept], current[d.dropped]
        status[dropped.key] = f"{STATUS_DUPLICATE_PREFIX}{d.kept}"
        scores = f"jaccard {d.jaccard:.2f}, cosine {d.cosine:.2f}"
        notes[dropped.key].append(f"near-duplicate of {d.kept} ({scores}); not served")
        notes[kept.key].append(f"near-duplicate {d.dropped} not served ({scores})")
        say(f"near-duplicate: {d.dropped} ~ {d.kept} ({scores}); keeping {d.kept}")

    stored = [
        StoredPassage(
            passage_id=p.passage_id,
            article_id=a.article_id,
            version=a.version,
            n=p.n,
            title=a.title,
            heading=p.heading,
            text=p.text,
            product_area=a.product_area,
            updated=a.updated.isoformat(),
            status=status[a.key],
        )
        for a in articles
        for p in passages[a.key]
    ]
    records = [
        VectorRecord(
            id=s.passage_id,
            values=matrix[n] if matrix is not None else [],
            metadata={
                "article_id": s.article_id,
                "version": s.version,
                "status": s.status,
                "product_area": s.product_area,
            },
        )
        for n, s in enumerate(stored)
    ]
    previous = {p.passage_id for p in store.load(tenant)}
    stale = sorted(previous - {s.passage_id for s in stored})
    say(f"indexing {len(records)} passages into namespace {tenant!r}")
    index.upsert(tenant, records)
    if stale:
        index.delete(tenant, stale)
    store.save(tenant, stored)

    report.events = [
        _event(tenant, a, status[a.key], [p.passage_id for p in passages[a.key]], notes[a.key])
        for a in sorted(articles, key=lambda a: (a.article_id, a.version))
    ]
    report.events_recorded = sink.emit(report.events)
    report.articles = len(current)
    report.versions = len(articles)
    report.passages = len(stored)
    report.removed_passages = len(stale)
    report.seconds = time.perf_counter() - started
    return report
