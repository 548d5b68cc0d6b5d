"""``kb eval``: retrieval quality and confidence calibration on the labelled queries.

Ranking metrics are over the answerable queries: hit@1, hit@3 and MRR (reciprocal rank
of the first acceptable article among the top ``k`` hits, 0 if absent). Calibration is
measured on every query (label: the top hit is acceptable; never for a ``none`` query)
with out-of-fold predictions of a ``folds``-fold cross-validation, so the reported ECE
is not the error on the data the model was fitted to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from kb.calibration import Calibration, expected_calibration_error, fit
from kb.retrieve import Retrieval, Retriever

QUERIES_PATH = Path(__file__).resolve().parent / "eval" / "queries.yaml"


@dataclass(frozen=True, slots=True)
class LabelledQuery:
    text: str
    expected: frozenset[str]  # empty: the knowledge base has no answer

    @property
    def answerable(self) -> bool:
        return bool(self.expected)


@dataclass(frozen=True, slots=True)
class Outcome:
    query: LabelledQuery
    retrieval: Retrieval
    rank: int | None  # 1-based rank of the first acceptable article, None if absent

    @property
    def correct(self) -> bool:
        return self.rank == 1


def load_queries(path: Path = QUERIES_PATH) -> list[LabelledQuery]:
    rows = yaml.safe_load(path.read_text("utf-8"))["queries"]
    out = []
    for row in rows:
        exp = row["expected"]
        ids = [] if exp in (None, "none") else [exp] if isinstance(exp, str) else list(exp)
        out.append(LabelledQuery(str(row["q"]), frozenset(ids)))
    return out


def run(
    retriever: Retriever, queries: list[LabelledQuery], tenant: str, k: int = 5
) -> list[Outcome]:
    outcomes = []
    for q in queries:
        retrieval = retriever.search(q.text, tenant=tenant, k=k)
        ranks = [n for n, h in enumerate(retrieval.hits, 1) if h.article_id in q.expected]
        outcomes.append(Outcome(q, retrieval, ranks[0] if ranks else None))
    return outcomes


def _arrays(outcomes: list[Outcome]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray([o.retrieval.features for o in outcomes], dtype=np.float64)
    y = np.asarray([1.0 if o.correct else 0.0 for o in outcomes])
    return x, y


def cross_validated(outcomes: list[Outcome], folds: int = 5) -> np.ndarray:
    """Out-of-fold confidence of every outcome (folds interleaved, deterministic)."""
    x, y = _arrays(outcomes)
    out = np.zeros(len(outcomes))
    for f in range(folds):
        test = np.arange(len(outcomes)) % folds == f
        model = fit(x[~test], y[~test])
        out[test] = [model.confidence(tuple(row)) for row in x[test]]
    return out


def metrics(outcomes: list[Outcome], folds: int = 5) -> dict[str, float]:
    answerable = [o for o in outcomes if o.query.answerable]
    unanswerable = [o for o in outcomes if not o.query.answerable]
    n = len(answerable) or 1
    _, y = _arrays(outcomes)
    cv = cross_validated(outcomes, folds)
    fitted = np.asarray([o.retrieval.confidence for o in outcomes])
    none_mask = np.asarray([not o.query.answerable for o in outcomes])
    return {
        "queries": len(outcomes),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "hit@1": round(sum(o.rank == 1 for o in answerable) / n, 4),
        "hit@3": round(sum(o.rank is not None and o.rank <= 3 for o in answerable) / n, 4),
        "mrr": round(sum(1 / o.rank for o in answerable if o.rank) / n, 4),
        "ece_cv": round(expected_calibration_error(cv, y), 4),
        "brier_cv": round(float(np.mean((cv - y) ** 2)), 4),
        "ece_in_sample": round(expected_calibration_error(fitted, y), 4),
        "mean_confidence_unanswerable_cv": round(float(cv[none_mask].mean()), 4)
        if none_mask.any()
        else 0.0,
        "mean_confidence_correct_cv": round(float(cv[y == 1].mean()), 4) if y.any() else 0.0,
    }


def fit_calibration(outcomes: list[Outcome]) -> Calibration:
    x, y = _arrays(outcomes)
    return fit(x, y)
