"""Ingest of the shipped knowledge base and retrieval over it (the real MiniLM embedder)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from events.knowledge import KnowledgeIngested
from kb.calibration import Calibration
from kb.index import LocalVectorIndex
from kb.ingest import IngestReport, ingest
from kb.retrieve import Retriever
from kb.sink import ArchiveSink
from kb.store import PassageStore
from models.embedder import Embedder

ARTICLES = Path(__file__).resolve().parents[2] / "kb" / "articles"
TENANT = "acme"


@dataclass
class Ingested:
    root: Path
    embedder: Embedder
    first: IngestReport
    second: IngestReport
    index: LocalVectorIndex
    store: PassageStore
    sink: ArchiveSink

    def retriever(self) -> Retriever:
        return Retriever(self.embedder, self.index, self.store, Calibration.load())


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    try:
        embedder = Embedder.load("int8")
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    root = tmp_path_factory.mktemp("kb")

    def run() -> IngestReport:
        return ingest(
            ARTICLES,
            tenant=TENANT,
            embedder=embedder,
            index=LocalVectorIndex(root / "index"),
            store=PassageStore(root / "passages"),
            sink=ArchiveSink(root / "knowledge.avro"),
        )

    first, second = run(), run()
    yield Ingested(
        root,
        embedder,
        first,
        second,
        LocalVectorIndex(root / "index"),
        PassageStore(root / "passages"),
        ArchiveSink(root / "knowledge.avro"),
    )


def by_key(events: list[KnowledgeIngested]) -> dict[str, KnowledgeIngested]:
    return {f"{e.article_id}@v{e.version}": e for e in events}


def test_report_has_exactly_the_deliberate_cases(kb: Ingested) -> None:
    report = kb.first
    assert (report.articles, report.versions) == (53, 55)
    assert [(s.article_id, s.version, s.by_version) for s in report.superseded] == [
        ("kb-api-rate-limits", 1, 2),
        ("kb-billing-refunds", 1, 2),
    ]
    (dup,) = report.duplicates
    assert (dup.kept, dup.dropped) == ("kb-account-password-reset", "kb-account-forgot-password")
    assert dup.jaccard >= 0.7
    assert dup.cosine > 0.9
    (bad,) = report.invalid
    assert bad.path.name == "broken-missing-id.md"
    assert "`id`" in bad.reason


def test_one_event_per_version_with_its_status(kb: Ingested) -> None:
    events = by_key(kb.first.events)
    assert len(events) == 55
    assert events["kb-api-rate-limits@v2"].status == "current"
    assert events["kb-api-rate-limits@v1"].status == "superseded"
    assert events["kb-billing-refunds@v1"].status == "superseded"
    assert events["kb-account-forgot-password@v1"].status == (
        "duplicate_of:kb-account-password-reset"
    )
    assert "superseded by v2" in events["kb-api-rate-limits@v1"].notes
    assert sum(e.status == "current" for e in events.values()) == 52
    v2 = events["kb-api-rate-limits@v2"]
    assert v2.envelope.tenant_id == TENANT
    assert v2.passage_ids[0] == "kb-api-rate-limits@v2#0"
    assert v2.updated.isoformat() == "2026-09-02"


def test_events_are_archived_once_and_reingest_is_idempotent(kb: Ingested) -> None:
    assert kb.first.events_recorded == 55
    assert kb.second.events_recorded == 0
    assert [e.event_id for e in kb.second.events] == [e.event_id for e in kb.first.events]
    archived = kb.sink.events()
    assert [e.event_id for e in archived] == [e.event_id for e in kb.first.events]
    assert kb.second.removed_passages == 0
    assert kb.index.namespaces() == {TENANT: kb.first.passages}


def test_superseded_and_duplicate_passages_are_kept_but_not_served(kb: Ingested) -> None:
    stored = {p.passage_id: p for p in kb.store.load(TENANT)}
    assert stored["kb-api-rate-limits@v1#0"].status == "superseded"
    assert not stored["kb-account-forgot-password@v1#0"].served
    assert len(stored) == kb.first.passages


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("my API token expired and I get 401", "kb-api-token-expired-401"),
        ("I get HTTP 429 too many requests", "kb-api-rate-limits"),
        ("API says 400 validation_failed on the email field", "kb-api-validation-errors"),
        ("I forgot my password", "kb-account-password-reset"),
        ("how do I request a refund", "kb-billing-refunds"),
        ("export my contacts to Excel", "kb-data-export"),
    ],
)
def test_finds_the_right_article(kb: Ingested, question: str, article: str) -> None:
    result = kb.retriever().search(question, tenant=TENANT)
    assert result.top is not None
    assert result.top.article_id == article
    assert result.confidence > 0.5
    assert len({h.article_id for h in result.hits}) == len(result.hits)  # one hit per article


def test_rate_limit_answer_comes_from_v2_never_v1(kb: Ingested) -> None:
    result = kb.retriever().search("what is the rate limit on Professional", tenant=TENANT, k=10)
    assert result.top is not None
    assert result.top.article_id == "kb-api-rate-limits"
    assert result.top.passage_id.startswith("kb-api-rate-limits@v2#")
    assert "1,000" in result.top.text
    assert all(
        "@v1#" not in h.passage_id or h.article_id != "kb-api-rate-limits" for h in result.hits
    )
    refunds = kb.retriever().search("how many days do I have to ask for a refund", tenant=TENANT)
    assert refunds.top is not None
    assert refunds.top.passage_id.startswith("kb-billing-refunds@v2#")


def test_confidence_is_low_off_topic(kb: Ingested) -> None:
    retriever = kb.retriever()
    for question in ("what's the weather in Paris tomorrow", "recommend a good pizza place"):
        assert retriever.search(question, tenant=TENANT).confidence < 0.35


def test_tenants_do_not_see_each_other(kb: Ingested) -> None:
    empty = kb.retriever().search("reset my password", tenant="someone-else")
    assert empty.hits == ()
    assert empty.confidence == 0.0
