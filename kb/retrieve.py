"""Hybrid retrieval: vector similarity + BM25 over passages, one hit per article.

The query is embedded (or its embedding taken from the process's memo, ``models.memo``,
when the enrich model already ran it) and sent to the tenant's namespace of the vector index (served
passages only); BM25 (rank-bm25, Okapi) scores every served passage of the tenant's
catalogue. Candidates are the union of both top lists. Each score is min-max normalised
over the candidates and fused as ``w * vector + (1 - w) * bm25``; hits are the best
passage of each article, best first. ``confidence`` is the calibrated probability that
the top hit answers the question (``kb.calibration``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from rank_bm25 import BM25Okapi

from events.knowledge import STATUS_CURRENT
from kb.calibration import Calibration
from kb.index import VectorIndex
from kb.ingest import DEFAULT_TENANT, TextEncoder
from kb.store import PassageStore, StoredPassage
from models.memo import MEMO

VECTOR_WEIGHT = 0.6
CANDIDATES = 40
_TOKEN = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_STOP = """a an and are as at be but by can do does for from get getting has have how i i'm if in
into is it its me my not of on or our so that the their them then there this to up us was we
what when where which who why will with you your"""
STOPWORDS = frozenset(_STOP.split())
FloatArray = npt.NDArray[np.float32]


def tokens(text: str) -> list[str]:
    """BM25 terms: lower-cased words and numbers (``invalid_token`` stays one term)."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


@dataclass(frozen=True, slots=True)
class Hit:
    """The best passage of one article, with its scores."""

    article_id: str
    version: int
    title: str
    product_area: str
    passage_id: str
    heading: str
    text: str
    vector: float  # cosine similarity of query and passage
    bm25: float  # raw BM25 score
    fused: float  # in [0, 1], the ranking score


@dataclass(frozen=True, slots=True)
class Retrieval:
    """What a search found: hits best first and the confidence that ``hits[0]`` answers."""

    query: str
    tenant: str
    hits: tuple[Hit, ...]
    confidence: float
    features: tuple[float, ...]

    @property
    def top(self) -> Hit | None:
        return self.hits[0] if self.hits else None


@dataclass
class _Corpus:
    stamp: float
    passages: list[StoredPassage]
    position: dict[str, int]
    bm25: Any  # rank_bm25.BM25Okapi (untyped)
    terms: list[set[str]]


def _minmax(values: Sequence[float]) -> list[float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        return [1.0 if hi > 0 else 0.0 for _ in values]
    return [(v - lo) / (hi - lo) for v in values]


class Retriever:
    """Answers ``search(question)`` for a tenant from the index and the catalogue."""

    def __init__(
        self,
        embedder: TextEncoder,
        index: VectorIndex,
        store: PassageStore,
        calibration: Calibration | None = None,
        *,
        vector_weight: float = VECTOR_WEIGHT,
        candidates: int = CANDIDATES,
    ) -> None:
        self.embedder = embedder
        self.index = index
        self.store = store
        self.calibration = calibration or Calibration.load()
        self.vector_weight = vector_weight
        self.candidates = candidates
        self._corpora: dict[str, _Corpus] = {}

    def _corpus(self, tenant: str) -> _Corpus:
        stamp = self.store.stamp(tenant)
        cached = self._corpora.get(tenant)
        if cached is not None and cached.stamp == stamp:
            return cached
        served = [p for p in self.store.load(tenant) if p.served]
        docs = [tokens(f"{p.title} {p.heading} {p.text}") for p in served]
        corpus = _Corpus(
            stamp=stamp,
            passages=served,
            position={p.passage_id: n for n, p in enumerate(served)},
            bm25=BM25Okapi(docs) if docs else None,
            terms=[set(d) for d in docs],
        )
        self._corpora[tenant] = corpus
        return corpus

    def query_vector(self, query: str) -> FloatArray:
        """The query's embedding: from this process's memo when the enrich model (or an
        earlier search) already ran the same graph on the same text, else computed."""
        sha = self.embedder.sha256
        found = MEMO.recall(sha, query) if sha else None
        if found is not None:
            return found
        vector: FloatArray = self.embedder.encode([query])[0]
        if sha:
            MEMO.remember(sha, query, vector)
        return vector

    def search(
        self,
        query: str,
        *,
        tenant: str = DEFAULT_TENANT,
        k: int = 5,
        product_area: str | None = None,
    ) -> Retrieval:
        """The ``k`` best articles for ``query`` (one passage each) and a confidence."""
        corpus = self._corpus(tenant)
        if corpus.bm25 is None or not query.strip():
            return Retrieval(query, tenant, (), 0.0, ())
        flt: dict[str, Any] = {"status": STATUS_CURRENT}
        if product_area:
            flt["product_area"] = product_area
        qvec = self.query_vector(query)
        matches = self.index.query(tenant, qvec, self.candidates, flt)
        vector = {m.id: m.score for m in matches if m.id in corpus.position}
        q_terms = tokens(query)
        bm25_all = np.asarray(corpus.bm25.get_scores(q_terms), dtype=np.float64)
        allowed = [
            n
            for n, p in enumerate(corpus.passages)
            if product_area is None or p.product_area == product_area
        ]
        by_bm25 = sorted(allowed, key=lambda n: -bm25_all[n])[: self.candidates]
        ids = list(dict.fromkeys([*vector, *(corpus.passages[n].passage_id for n in by_bm25)]))
        if not ids:
            return Retrieval(query, tenant, (), 0.0, ())
        floor = min(vector.values()) if vector else 0.0  # unseen by the index: <= its last
        vec = [vector.get(i, floor) for i in ids]
        bm = [float(bm25_all[corpus.position[i]]) for i in ids]
        fused = [
            self.vector_weight * v + (1 - self.vector_weight) * b
            for v, b in zip(_minmax(vec), _minmax(bm), strict=True)
        ]
        best: dict[str, Hit] = {}
        for pid, v, b, f in zip(ids, vec, bm, fused, strict=True):
            p = corpus.passages[corpus.position[pid]]
            hit = Hit(p.article_id, p.version, p.title, p.product_area, pid, p.heading, p.text,
                      v, b, f)  # fmt: skip
            if p.article_id not in best or f > best[p.article_id].fused:
                best[p.article_id] = hit
        ranked = sorted(best.values(), key=lambda h: (-h.fused, h.article_id))
        article_vec: dict[str, float] = {}
        for pid, v in zip(ids, vec, strict=True):
            aid = corpus.passages[corpus.position[pid]].article_id
            article_vec[aid] = max(article_vec.get(aid, -1.0), v)
        top = ranked[0]
        terms = set(q_terms)
        coverage = (
            len(terms & corpus.terms[corpus.position[top.passage_id]]) / len(terms)
            if terms
            else 0.0
        )
        others = [s for a, s in article_vec.items() if a != top.article_id]
        features = (
            article_vec[top.article_id],
            article_vec[top.article_id] - (max(others) if others else 0.0),
            coverage,
            top.fused - (ranked[1].fused if len(ranked) > 1 else 0.0),
        )
        confidence = self.calibration.confidence(features)
        return Retrieval(query, tenant, tuple(ranked[:k]), confidence, features)
