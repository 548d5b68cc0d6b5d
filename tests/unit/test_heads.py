"""Heads without the embedder: data loading, calibration maths, the ONNX graphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models.datasets import (
    DatasetError,
    fingerprint,
    load_labelled,
    stratified_split,
    write_csv,
)
from models.heads import (
    RegressionHead,
    SoftmaxHead,
    expected_calibration_error,
    fit_temperature,
    head_model,
    load_weights,
    nll,
    regression_part,
    save_weights,
    softmax,
    softmax_part,
)

ROWS = [
    {"utterance": "I was charged twice", "intent": "BILLING/Payment", "score": "0.7"},
    {"utterance": "   ", "intent": "BILLING/Payment", "score": "0.1"},
    {"utterance": "reset my password please", "intent": "ACCOUNT/Password", "score": "0.2"},
    {"utterance": "talk to a human", "intent": "", "score": "0.9"},
    {"utterance": "export all contacts, to CSV", "intent": "DATA/Export", "score": "0.0"},
]


def write_rows(path: Path) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    else:
        lines = ["utterance,intent,score"]
        lines += [f'"{r["utterance"]}",{r["intent"]},{r["score"]}' for r in ROWS]
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_load_any_columns_and_count_skipped_rows(tmp_path: Path, suffix: str) -> None:
    data = load_labelled(write_rows(tmp_path / f"d{suffix}"), "utterance", "intent", ["score"])
    assert data.texts == (
        "I was charged twice",
        "reset my password please",
        "export all contacts, to CSV",
    )
    assert data.labels == ("BILLING/Payment", "ACCOUNT/Password", "DATA/Export")
    assert data.extra["score"] == ("0.7", "0.2", "0.0")
    assert (data.skipped_empty_text, data.skipped_empty_label) == (1, 1)
    assert data.floats("score").tolist() == [0.7, 0.2, 0.0]


def test_fingerprint_ignores_format_and_column_names(tmp_path: Path) -> None:
    a = load_labelled(write_rows(tmp_path / "d.csv"), "utterance", "intent")
    b = load_labelled(write_rows(tmp_path / "d.jsonl"), "utterance", "intent")
    assert fingerprint(a) == fingerprint(b)
    c = load_labelled(write_csv(a, tmp_path / "copy.csv"), "utterance", "intent")
    assert fingerprint(c) == fingerprint(a)
    assert fingerprint(a.subset([1, 0, 2])) != fingerprint(a)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_missing_column_names_the_available_ones(tmp_path: Path, suffix: str) -> None:
    path = write_rows(tmp_path / f"d{suffix}")
    with pytest.raises(DatasetError) as err:
        load_labelled(path, "text", "intent")
    assert "'text'" in str(err.value)
    assert "utterance, intent, score" in str(err.value)


def test_unknown_format_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DatasetError, match="unknown format"):
        load_labelled(tmp_path / "d.xlsx")


def test_stratified_split_is_deterministic_and_stratified(tmp_path: Path) -> None:
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 2
    lines = ["text,label", *(f"text {i},{label}" for i, label in enumerate(labels))]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    data = load_labelled(tmp_path / "d.csv")
    train, test = stratified_split(data, 0.2, seed=13)
    again = stratified_split(data, 0.2, seed=13)
    assert (train, test) == again
    assert stratified_split(data, 0.2, seed=14)[1].texts != test.texts
    assert sorted(test.labels) == ["a"] * 10 + ["b"] * 6 + ["c"]
    assert sorted(train.texts + test.texts) == sorted(data.texts)


def test_ece_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    # bins: 0.9 right (gap 0.1), 0.6 wrong (gap 0.6), 0.8 right (gap 0.2)
    assert expected_calibration_error(probs, [0, 1, 1]) == pytest.approx(0.3)
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1]) == 0.0
    # two rows in one bin: |mean accuracy 0.5 - mean confidence 0.75|
    assert expected_calibration_error(np.array([[0.75, 0.25]] * 2), [0, 1]) == pytest.approx(0.25)


def test_temperature_scaling_fixes_overconfidence() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0.0, 1.5, size=(4000, 5))
    p = softmax(true_logits)
    y = np.array([rng.choice(5, p=row) for row in p])
    overconfident = 3.0 * true_logits
    temperature = fit_temperature(overconfident, y)
    assert 2.5 < temperature < 3.5
    before = expected_calibration_error(softmax(overconfident), y)
    after = expected_calibration_error(softmax(overconfident / temperature), y)
    assert before > 0.1
    assert after < before / 3
    assert nll(softmax(overconfident / temperature), y) < nll(softmax(overconfident), y)


def random_heads(seed: int = 1) -> tuple[SoftmaxHead, RegressionHead]:
    rng = np.random.default_rng(seed)
    intent = SoftmaxHead(
        labels=tuple(f"label{i}" for i in range(7)),
        weight=rng.normal(0, 2, (384, 7)).astype(np.float32),
        bias=rng.normal(0, 1, 7).astype(np.float32),
        temperature=0.7,
    )
    frustration = RegressionHead(
        weight=rng.normal(0, 0.3, (384, 1)).astype(np.float32),
        bias=np.array([0.4], dtype=np.float32),
    )
    return intent, frustration


def unit_rows(n: int, seed: int = 2) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 384)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_onnx_head_matches_numpy() -> None:
    intent, frustration = random_heads()
    model = head_model(
        [
            softmax_part(intent, "intent_probs", "intent_head"),
            regression_part(frustration, "frustration", "f"),
        ],
        name="test",
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = unit_rows(33)
    probs, score = session.run(["intent_probs", "frustration"], {"sentence_embedding": x})
    assert probs.shape == (33, 7) and score.shape == (33, 1)
    np.testing.assert_allclose(probs, intent.predict_proba(x), atol=1e-5)
    np.testing.assert_allclose(score, frustration.predict(x), atol=1e-5)
    assert score.min() >= 0.0 and score.max() <= 1.0
    assert 0.0 < score.mean() < 1.0


def test_weights_round_trip(tmp_path: Path) -> None:
    intent, frustration = random_heads()
    loaded = load_weights(
        save_weights(tmp_path / "w.npz", {"intent": intent, "frustration": frustration})
    )
    got = loaded["intent"]
    assert isinstance(got, SoftmaxHead)
    assert got.labels == intent.labels and got.temperature == intent.temperature
    np.testing.assert_array_equal(got.weight, intent.weight)
    reg = loaded["frustration"]
    assert isinstance(reg, RegressionHead)
    np.testing.assert_array_equal(reg.weight, frustration.weight)
