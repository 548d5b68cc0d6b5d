"""The torch-free MiniLM embedder against sentence-transformers' own embeddings.

The reference (tests/fixtures/minilm_reference.json) was made once with torch by
tools/make_minilm_reference.py; the models are built (idempotently) by the fixture, as
``make models`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.build import build_embedder
from models.embedder import DIMENSION, MAX_SEQ_LENGTH, Embedder

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_reference.json"
MIN_COSINE = {"fp32": 0.999, "int8": 0.98}


@pytest.fixture(scope="session")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


@pytest.fixture(scope="session")
def built() -> dict[str, Any]:
    return build_embedder()


@pytest.fixture(scope="session", params=["fp32", "int8"])
def embedder(request: pytest.FixtureRequest, built: dict[str, Any]) -> Embedder:
    return Embedder.load(request.param)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)


def test_reference_covers_truncation(reference: dict[str, Any]) -> None:
    tokens = reference["untruncated_tokens"]
    assert len(reference["sentences"]) >= 20
    assert any(128 < n <= MAX_SEQ_LENGTH for n in tokens)
    assert any(n > MAX_SEQ_LENGTH for n in tokens)


def test_each_sentence_alone_matches_reference(
    embedder: Embedder, reference: dict[str, Any]
) -> None:
    expected = np.array(reference["embeddings"])
    got = np.vstack([embedder.encode([s]) for s in reference["sentences"]])
    cos = cosines(got, expected)
    assert cos.min() >= MIN_COSINE[embedder.variant], (embedder.variant, cos.min(), cos.argmin())


@pytest.mark.parametrize("batch_size", [7, 64])
def test_padded_batches_match_reference(
    embedder: Embedder, reference: dict[str, Any], batch_size: int
) -> None:
    sentences = reference["sentences"]  # batch_size 64: one batch, padded to 256 tokens
    expected = np.array(reference["embeddings"])
    got = embedder.encode(sentences, batch_size=batch_size)  # results come back in order
    cos = cosines(got, expected)
    assert cos.min() >= MIN_COSINE[embedder.variant], (embedder.variant, cos.min(), cos.argmin())


def test_output_shape_dtype_and_norm(embedder: Embedder) -> None:
    texts = ["reset my password", "where is my parcel?", "x" * 10, "refund please"]
    got = embedder.encode(texts, batch_size=3)
    assert got.shape == (len(texts), DIMENSION)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, DIMENSION)


def test_metadata(embedder: Embedder, built: dict[str, Any]) -> None:
    assert embedder.name == "all-MiniLM-L6-v2"
    assert embedder.path.name == "model.onnx" and embedder.path.parent.name == embedder.variant
    assert embedder.sha256 == built["files"][f"{embedder.variant}/model.onnx"]


def test_tokenizer_pads_to_longest_not_128(embedder: Embedder) -> None:
    input_ids, attention_mask = embedder.tokenize(["hi", "how do I reset my password"])
    assert input_ids.dtype == np.int64 and attention_mask.dtype == np.int64
    assert input_ids.shape == attention_mask.shape
    assert input_ids.shape[1] < 16
    assert attention_mask[0].sum() == 3  # [CLS] hi [SEP]
    assert (input_ids[0, 3:] == 0).all() and (attention_mask[0, 3:] == 0).all()
    assert attention_mask[1].all()


def test_tokenizer_truncates_at_256(embedder: Embedder) -> None:
    input_ids, attention_mask = embedder.tokenize(["word " * 200, "word " * 1000])
    assert input_ids.shape == (2, MAX_SEQ_LENGTH)
    assert attention_mask[0].sum() == 202  # 200 words + [CLS] + [SEP]: beyond 128, kept
    assert attention_mask[1].all()
    assert input_ids[1, -1] == input_ids[0, 201]  # truncated text still ends with [SEP]


def test_build_is_idempotent(built: dict[str, Any]) -> None:
    again = build_embedder()
    assert again["built"] == []
    assert again["files"] == built["files"]


def test_unknown_variant_and_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Embedder.load("fp16")
    with pytest.raises(FileNotFoundError, match="make models"):
        Embedder.load("fp32", root=tmp_path)
