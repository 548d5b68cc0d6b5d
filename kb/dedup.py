"""Near-duplicate detection between articles with different ids.

Two signals, both reported: the Jaccard similarity of word 3-shingles of the bodies
(lower-cased, split on whitespace) and the cosine of the whole-article embeddings (the
normalised mean of the article's passage embeddings). A pair is a near-duplicate when
the shingle Jaccard reaches ``jaccard_threshold``, or when the embeddings are almost
identical (``cosine_threshold``) and the texts still overlap substantially
(``jaccard_floor``): the second rule catches a rewrite that changed many words but
kept the content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kb.index import FloatArray

JACCARD_THRESHOLD = 0.7
COSINE_THRESHOLD = 0.92
JACCARD_FLOOR = 0.3


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    """Two article ids whose current versions are near-copies; ``kept`` is served."""

    kept: str
    dropped: str
    jaccard: float
    cosine: float


def shingles(text: str, size: int = 3) -> frozenset[tuple[str, ...]]:
    words = text.lower().split()
    return frozenset(tuple(words[i : i + size]) for i in range(max(len(words) - size + 1, 1)))


def jaccard(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def article_vector(passage_vectors: FloatArray) -> FloatArray:
    """Unit-length mean of an article's passage embeddings."""
    mean: FloatArray = passage_vectors.mean(axis=0).astype(np.float32)
    norm = float(np.linalg.norm(mean)) or 1.0
    return mean / np.float32(norm)


def similar_pairs(
    ids: Sequence[str],
    bodies: Sequence[str],
    vectors: FloatArray,
    *,
    jaccard_threshold: float = JACCARD_THRESHOLD,
    cosine_threshold: float = COSINE_THRESHOLD,
    jaccard_floor: float = JACCARD_FLOOR,
) -> list[tuple[int, int, float, float]]:
    """``(i, j, jaccard, cosine)`` for every near-duplicate pair of rows, ``i < j``."""
    sets = [shingles(b) for b in bodies]
    cosines = vectors @ vectors.T
    out: list[tuple[int, int, float, float]] = []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            if ids[i] == ids[j]:
                continue
            jac = jaccard(sets[i], sets[j])
            cos = float(cosines[i, j])
            if jac >= jaccard_threshold or (cos >= cosine_threshold and jac >= jaccard_floor):
                out.append((i, j, round(jac, 4), round(cos, 4)))
    return out
