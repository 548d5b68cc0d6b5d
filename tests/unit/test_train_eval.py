"""Training, composing and evaluating heads with the real embedder (built idempotently)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from models.build import build_embedder
from models.cli import app
from models.compose import compose_enrich
from models.datasets import load_labelled
from models.embedder import Embedder
from models.heads import RegressionHead, SoftmaxHead, load_weights
from models.train import fit_softmax_head, train

INTENTS = {
    "BILLING/Refund": [
        "I want my money back for last month",
        "please refund the duplicate charge",
        "can I get a refund on my annual plan",
        "refund the invoice you sent by mistake",
        "how long does a refund take to arrive",
        "you charged me after I cancelled, refund it",
    ],
    "ACCOUNT/Password": [
        "I forgot my password",
        "the password reset email never arrives",
        "how do I change my password",
        "reset link says expired when I click it",
        "locked out after too many password attempts",
        "my new password is not accepted",
    ],
    "DATA/Export": [
        "how do I export all contacts to csv",
        "export button does nothing on the deals page",
        "can I download my reports as excel",
        "I need a full data export of our account",
        "export to csv cuts off after 1000 rows",
        "schedule a weekly export of leads",
    ],
    "out_of_scope": [
        "what's the weather tomorrow",
        "tell me a joke",
        "who won the football match",
        "recommend a good pizza place",
        "what is the capital of France",
        "sing me a song",
    ],
}
SENTIMENT = {
    "negative": [
        "this is useless and broken again",
        "I'm furious, nothing works",
        "terrible support, I'm done",
        "still broken after three days, unacceptable",
        "worst update ever",
    ],
    "neutral": [
        "how do I add a field",
        "where is the export button",
        "what plan am I on",
        "I have a question about invoices",
        "can you send the docs",
    ],
    "positive": [
        "thanks, that fixed it",
        "great job, works perfectly",
        "love the new dashboard",
        "you're amazing, thank you",
        "super helpful, cheers",
    ],
}
FRUSTRATION = {"negative": 0.8, "neutral": 0.1, "positive": 0.0}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    build_embedder()
    return Embedder.load("fp32")


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def intent_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [[t, label] for label, texts in INTENTS.items() for t in texts]
    return write_csv(tmp_path_factory.mktemp("data") / "intents.csv", ["utterance", "intent"], rows)


@pytest.fixture(scope="module")
def sentiment_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [[t, s, FRUSTRATION[s]] for s, texts in SENTIMENT.items() for t in texts]
    path = tmp_path_factory.mktemp("data") / "sentiment.csv"
    return write_csv(path, ["text", "sentiment", "frustration"], rows)


def test_fit_is_deterministic_on_synthetic_clusters() -> None:
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(4, 384))
    y = np.repeat(np.arange(4), 25)
    x = centres[y] + rng.normal(scale=2.0, size=(100, 384))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = [f"c{i}" for i in y]
    a, b = fit_softmax_head(x, labels, seed=3), fit_softmax_head(x, labels, seed=3)
    np.testing.assert_array_equal(a.head.weight, b.head.weight)
    assert a.head.temperature == b.head.temperature and a.metrics == b.metrics
    assert a.metrics["accuracy"] > 0.9
    assert a.metrics["ece_calibrated"] < 0.2


def test_training_twice_gives_identical_bytes(
    tmp_path: Path, intent_file: Path, embedder: Embedder
) -> None:
    data = load_labelled(intent_file, "utterance", "intent")
    first = train(data, tmp_path / "a", seed=13, embedder=embedder)
    second = train(data, tmp_path / "b", seed=13, embedder=embedder)
    for name in ("intent.onnx", "weights.npz", "labels.json", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert first == second
    assert first["data"]["rows"] == 24 and first["seed"] == 13
    assert first["embedder"]["sha256"] == embedder.sha256
    assert first["files"]["intent.onnx"] == first["files"]["intent.onnx"].lower()
    assert json.loads((tmp_path / "a" / "labels.json").read_text())["intent"] == sorted(INTENTS)


def test_merged_model_equals_embedder_then_heads(
    tmp_path: Path, intent_file: Path, sentiment_file: Path, embedder: Embedder
) -> None:
    intent_dir, sentiment_dir = tmp_path / "intent", tmp_path / "sentiment"
    train(load_labelled(intent_file, "utterance", "intent"), intent_dir, embedder=embedder)
    sentiment = load_labelled(sentiment_file, "text", "sentiment", ["frustration"])
    train(
        sentiment, sentiment_dir, task="sentiment", frustration_col="frustration", embedder=embedder
    )
    heads = {
        **load_weights(intent_dir / "weights.npz"),
        **load_weights(sentiment_dir / "weights.npz"),
    }
    assert isinstance(heads["intent"], SoftmaxHead) and isinstance(heads["sentiment"], SoftmaxHead)
    assert isinstance(heads["frustration"], RegressionHead)
    assert heads["sentiment"].labels == ("negative", "neutral", "positive")
    int8 = Embedder.load("int8")
    merged = compose_enrich(int8.path, heads["intent"], heads["sentiment"], heads["frustration"])
    session = ort.InferenceSession(merged.SerializeToString(), providers=["CPUExecutionProvider"])
    texts = ["I was charged twice and want a refund!!", "thanks, the export works now", "hi"]
    ids, mask = int8.tokenize(texts)
    names = ["sentence_embedding", "intent_probs", "sentiment_probs", "frustration"]
    got = dict(
        zip(names, session.run(names, {"input_ids": ids, "attention_mask": mask}), strict=True)
    )
    embedding = int8.encode(texts)
    np.testing.assert_allclose(got["sentence_embedding"], embedding, atol=1e-5)
    separate = {
        "intent_probs": ort.InferenceSession(str(intent_dir / "intent.onnx")),
        "sentiment_probs": ort.InferenceSession(str(sentiment_dir / "sentiment.onnx")),
    }
    for output, head_session in separate.items():
        (expected, *_) = head_session.run([output], {"sentence_embedding": embedding})
        np.testing.assert_allclose(got[output], expected, atol=1e-5)
    (expected_f,) = separate["sentiment_probs"].run(
        ["frustration"], {"sentence_embedding": embedding}
    )
    np.testing.assert_allclose(got["frustration"], expected_f, atol=1e-5)
    assert got["intent_probs"].shape == (3, 4) and got["frustration"].shape == (3, 1)
    np.testing.assert_allclose(
        got["intent_probs"], heads["intent"].predict_proba(embedding), atol=1e-5
    )


def last_json(output: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return payload


def test_cli_train_split_eval_end_with_json(
    tmp_path: Path, intent_file: Path, sentiment_file: Path, embedder: Embedder
) -> None:
    runner = CliRunner()
    split = runner.invoke(
        app,
        [
            "split",
            "--data",
            str(intent_file),
            "--text-col",
            "utterance",
            "--label-col",
            "intent",
            "--out-dir",
            str(tmp_path / "split"),
            "--test-size",
            "0.34",
        ],
    )
    assert split.exit_code == 0, split.output
    assert last_json(split.stdout)["test_rows"] == 8
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(tmp_path / "split" / "train.csv"),
            "--text-col",
            "utterance",
            "--label-col",
            "intent",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert {"accuracy", "macro_f1", "ece_calibrated"} <= set(last_json(result.stdout))
    ev = runner.invoke(
        app,
        [
            "eval",
            "intents",
            "--model",
            str(tmp_path / "m"),
            "--data",
            str(tmp_path / "split" / "test.csv"),
            "--text-col",
            "utterance",
            "--label-col",
            "intent",
        ],
    )
    assert ev.exit_code == 0, ev.output
    report = last_json(ev.stdout)
    assert report["rows"] == 8 and 0.0 <= report["accuracy"] <= 1.0
    assert {"macro_f1", "ece", "oos_recall", "per_class"} <= set(report)
    assert "precision" in ev.stdout

    train_s = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(sentiment_file),
            "--label-col",
            "sentiment",
            "--task",
            "sentiment",
            "--frustration-col",
            "frustration",
            "--out",
            str(tmp_path / "s"),
        ],
    )
    assert train_s.exit_code == 0, train_s.output
    ev_s = runner.invoke(
        app,
        [
            "eval",
            "sentiment",
            "--model",
            str(tmp_path / "s"),
            "--data",
            str(sentiment_file),
            "--label-col",
            "sentiment",
            "--frustration-col",
            "frustration",
        ],
    )
    assert ev_s.exit_code == 0, ev_s.output
    report_s = last_json(ev_s.stdout)
    assert {"negative_recall", "negative_precision", "frustration_mae"} <= set(report_s)
    assert report_s["accuracy"] > 0.8  # on its own training data


def test_cli_missing_column_is_a_clear_error(intent_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--data", str(intent_file), "--text-col", "text", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "available columns: utterance, intent" in result.output
