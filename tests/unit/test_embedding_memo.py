"""The enrich model's embedding of a message serves the knowledge base's query for it.

Run alone, the enrich model's MiniLM part computes bit-for-bit what the knowledge base's
query embedder computes, so the retriever takes it from the process's memo; rows of a
larger batch (int8 activation scales depend on the neighbours) are never kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kb.calibration import Calibration
from kb.index import LocalVectorIndex
from kb.retrieve import Retriever
from kb.store import PassageStore
from models.adapters.local import LocalEnrichModel
from models.embedder import Embedder
from models.memo import MEMO, EmbeddingMemo

TEXT = "My API calls fail with 401 since this morning, the OAuth token is a day old"


@pytest.fixture()
def memo() -> Iterator[EmbeddingMemo]:
    MEMO.clear()
    yield MEMO
    MEMO.clear()


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    try:
        return Embedder.load("int8")
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def enrich() -> LocalEnrichModel:
    try:
        return LocalEnrichModel("int8")
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def test_a_message_enriched_alone_is_the_query_embedding(
    memo: EmbeddingMemo, embedder: Embedder, enrich: LocalEnrichModel, tmp_path: Path
) -> None:
    assert enrich.artefact.embedder_sha256 == embedder.sha256
    enrich.predict([TEXT])
    kept = memo.recall(embedder.sha256, TEXT)
    assert kept is not None
    assert np.array_equal(kept, embedder.encode([TEXT])[0])
    retriever = Retriever(
        embedder, LocalVectorIndex(tmp_path / "i"), PassageStore(tmp_path / "p"), Calibration.load()
    )
    before = memo.hits
    assert retriever.query_vector(TEXT) is kept
    assert memo.hits == before + 1


def test_rows_of_a_batch_are_not_kept(memo: EmbeddingMemo, enrich: LocalEnrichModel) -> None:
    enrich.predict([TEXT, "hi"])
    assert len(memo) == 0


def test_a_search_embeds_a_new_query_once(
    memo: EmbeddingMemo, embedder: Embedder, tmp_path: Path
) -> None:
    retriever = Retriever(
        embedder, LocalVectorIndex(tmp_path / "i"), PassageStore(tmp_path / "p"), Calibration.load()
    )
    first = retriever.query_vector("how do I export my contacts")
    assert memo.misses == 1
    assert np.array_equal(retriever.query_vector("how do I export my contacts"), first)
    assert memo.hits == 1


def test_the_memo_is_bounded_least_recently_used_out() -> None:
    small = EmbeddingMemo(max_entries=2)
    v = np.ones(3, dtype=np.float32)
    small.remember("g", "a", v)
    small.remember("g", "b", v)
    assert small.recall("g", "a") is not None  # "a" is now the most recent
    small.remember("g", "c", v)
    assert small.recall("g", "b") is None
    assert small.recall("g", "a") is not None and small.recall("g", "c") is not None
    assert small.recall("other graph", "a") is None
