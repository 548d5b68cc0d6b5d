"""Train the intent and sentiment heads on frozen MiniLM embeddings.

Intent (and the sentiment classes): multinomial logistic regression on the normalised
embeddings; ``C`` is chosen on a small grid by stratified k-fold cross-validation (the
lowest out-of-fold NLL after temperature scaling), then a temperature is fit on the
out-of-fold logits so the top probability means what it says. The reported
``ece_calibrated`` is cross-fitted (each fold's temperature is fit on the other folds'
logits), so it is not flattered by fitting and scoring on the same rows. Frustration: a
ridge regression (alpha by leave-one-out) clipped to [0, 1]. Everything is deterministic
for a fixed seed: same data + seed -> the same weights and the same ONNX bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from models import manifest as mf
from models.datasets import LabelledTexts, describe, fingerprint, log, normalise_text
from models.embedder import DIMENSION, Embedder
from models.heads import (
    F32,
    F64,
    RegressionHead,
    SoftmaxHead,
    expected_calibration_error,
    fit_temperature,
    head_model,
    nll,
    regression_part,
    save_model,
    save_weights,
    softmax,
    softmax_part,
)

C_GRID = (1.0, 4.0, 16.0, 64.0, 256.0)
RIDGE_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0)
FOLDS = 5
SEED = 13
SENTIMENT_LABELS = ("negative", "neutral", "positive")
TASKS = ("intent", "sentiment")
OUTPUTS = {"intent": "intent_probs", "sentiment": "sentiment_probs"}
FRUSTRATION = "frustration"


@dataclass(frozen=True, slots=True)
class SoftmaxFit:
    head: SoftmaxHead
    metrics: dict[str, Any]
    params: dict[str, Any]


def embed_texts(embedder: Embedder, texts: Sequence[str], batch_size: int = 64) -> F32:
    """Embeddings of the normalised ``texts``, run in length-sorted chunks (less padding),
    with progress on stderr for big inputs. Rows come back in ``texts`` order."""
    clean = [normalise_text(t) for t in texts]
    order = np.argsort([len(t) for t in clean], kind="stable")
    out = np.empty((len(clean), DIMENSION), np.float32)
    chunk = 1024
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        out[rows] = embedder.encode([clean[i] for i in rows], batch_size=batch_size)
        if len(order) > chunk:
            log(f"embedded {min(start + chunk, len(order))}/{len(order)} ({embedder.variant})")
    return out


def _folds(y: np.ndarray[Any, Any], folds: int, seed: int) -> list[tuple[Any, Any]]:
    smallest = int(np.bincount(y).min())
    n_splits = min(folds, smallest)
    if n_splits < 2:
        raise ValueError("every label needs at least 2 rows for cross-validation")
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def _logreg(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=1000)


def _classification_metrics(probs: F64, y: np.ndarray[Any, Any]) -> dict[str, float]:
    pred = probs.argmax(axis=1)
    return {
        "accuracy": round(float(np.mean(pred == y)), 6),
        "macro_f1": round(float(f1_score(y, pred, average="macro", zero_division=0)), 6),
    }


def fit_softmax_head(
    x: F32,
    labels: Sequence[str],
    label_order: Sequence[str] | None = None,
    seed: int = SEED,
    c_grid: Sequence[float] = C_GRID,
    folds: int = FOLDS,
) -> SoftmaxFit:
    """Fit, calibrate and cross-validate one softmax head (see the module docstring)."""
    order = tuple(label_order) if label_order is not None else tuple(sorted(set(labels)))
    index = {label: i for i, label in enumerate(order)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"labels outside {list(order)}: {unknown}")
    y = np.array([index[label] for label in labels], dtype=np.int64)
    missing = [order[i] for i in range(len(order)) if not np.any(y == i)]
    if missing:
        raise ValueError(f"no training rows for {missing}")
    x64 = x.astype(np.float64)
    splits = _folds(y, folds, seed)
    grid: list[dict[str, float]] = []
    best: tuple[float, float, F64] | None = None
    for c in c_grid:
        oof = np.zeros((len(y), len(order)))
        for train_rows, test_rows in splits:
            model = _logreg(c).fit(x64[train_rows], y[train_rows])
            oof[test_rows] = model.decision_function(x64[test_rows])
        temperature = fit_temperature(oof, y)
        score = nll(softmax(oof / temperature), y)
        grid.append({"C": c, "temperature": temperature, "nll_calibrated": round(score, 6)})
        grid[-1].update(_classification_metrics(softmax(oof), y))
        if best is None or score < best[1] - 1e-12:
            best = (c, score, oof)
    assert best is not None
    c, _, oof = best
    temperature = fit_temperature(oof, y)
    crossfit = np.zeros_like(oof)
    for train_rows, test_rows in splits:
        t = fit_temperature(oof[train_rows], y[train_rows])
        crossfit[test_rows] = softmax(oof[test_rows] / t)
    raw = softmax(oof)
    metrics: dict[str, Any] = {
        "evaluation": f"{len(splits)}-fold stratified cross-validation (out-of-fold)",
        "rows": len(y),
        **_classification_metrics(crossfit, y),
        "ece_uncalibrated": round(expected_calibration_error(raw, y), 6),
        "ece_calibrated": round(expected_calibration_error(crossfit, y), 6),
        "nll_uncalibrated": round(nll(raw, y), 6),
        "nll_calibrated": round(nll(crossfit, y), 6),
    }
    final = _logreg(c).fit(x64, y)
    head = SoftmaxHead(
        labels=order,
        weight=np.ascontiguousarray(final.coef_.T, dtype=np.float32),
        bias=final.intercept_.astype(np.float32),
        temperature=temperature,
    )
    params = {"C": c, "temperature": temperature, "folds": len(splits), "grid": grid}
    return SoftmaxFit(head, metrics, params)


def fit_regression_head(
    x: F32, target: F64, strata: Sequence[str], seed: int = SEED, folds: int = FOLDS
) -> tuple[RegressionHead, dict[str, Any], dict[str, Any]]:
    """Ridge on the embeddings, clipped to [0, 1]; out-of-fold MAE and Pearson r."""
    if np.any((target < 0) | (target > 1)) or not np.all(np.isfinite(target)):
        raise ValueError("frustration scores must be numbers in [0, 1]")
    x64 = x.astype(np.float64)
    alpha = float(RidgeCV(alphas=RIDGE_ALPHAS).fit(x64, target).alpha_)
    index = {s: i for i, s in enumerate(sorted(set(strata)))}
    splits = _folds(np.array([index[s] for s in strata]), folds, seed)
    oof = np.zeros_like(target)
    for train_rows, test_rows in splits:
        oof[test_rows] = (
            Ridge(alpha=alpha).fit(x64[train_rows], target[train_rows]).predict(x64[test_rows])
        )
    oof = np.clip(oof, 0.0, 1.0)
    r = float(np.corrcoef(oof, target)[0, 1]) if np.std(target) > 0 else 0.0
    metrics = {"frustration_mae": round(float(np.mean(np.abs(oof - target))), 6)}
    metrics["frustration_pearson"] = round(r, 6)
    final = Ridge(alpha=alpha).fit(x64, target)
    head = RegressionHead(
        weight=final.coef_.astype(np.float32).reshape(-1, 1),
        bias=np.array([final.intercept_], dtype=np.float32),
    )
    return head, metrics, {"alpha": alpha}


def train(
    data: LabelledTexts,
    out: Path,
    task: str = "intent",
    seed: int = SEED,
    frustration_col: str | None = None,
    variant: str = "fp32",
    models_root: Path | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Train one head from ``data`` and write ``out/{task}.onnx``, ``labels.json``,
    ``weights.npz`` and ``manifest.json``. Returns the manifest."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    log(describe(data))
    embedder = embedder or Embedder.load(variant, models_root)
    x = embed_texts(embedder, data.texts)
    order = SENTIMENT_LABELS if task == "sentiment" else None
    log(f"fitting the {task} head (C grid {list(C_GRID)}, seed {seed})")
    fit = fit_softmax_head(x, data.labels, label_order=order, seed=seed)
    parts = [softmax_part(fit.head, OUTPUTS[task], prefix=f"{task}_head")]
    heads: dict[str, SoftmaxHead | RegressionHead] = {task: fit.head}
    metrics, params = dict(fit.metrics), dict(fit.params)
    extra_cols: tuple[str, ...] = ()
    if frustration_col:
        extra_cols = (frustration_col,)
        reg, reg_metrics, reg_params = fit_regression_head(
            x, data.floats(frustration_col), data.labels, seed=seed
        )
        parts.append(regression_part(reg, FRUSTRATION, prefix="frustration_head"))
        heads[FRUSTRATION] = reg
        metrics.update(reg_metrics)
        params["frustration"] = reg_params
    onnx_name = f"{task}.onnx"
    model = head_model(parts, name=f"casestream-{task}-head")
    save_model(model, out / onnx_name)
    save_weights(out / "weights.npz", heads)
    mf.write_labels(out, {task: list(fit.head.labels)})
    manifest: dict[str, Any] = {
        "name": f"casestream-{task}-head",
        "version": mf.VERSION,
        "recipe": mf.RECIPE,
        "task": task,
        "input": "sentence_embedding",
        "outputs": [p.output.name for p in parts],
        "files": mf.file_digests(out, [onnx_name, "labels.json", "weights.npz"]),
        "embedder": {"name": embedder.name, "variant": embedder.variant, "sha256": embedder.sha256},
        "data": {
            "source": Path(data.source).name,
            "rows": len(data),
            "text_col": data.text_col,
            "label_col": data.label_col,
            "extra_cols": list(extra_cols),
            "skipped_empty_text": data.skipped_empty_text,
            "skipped_empty_label": data.skipped_empty_label,
            "fingerprint": fingerprint(data, *extra_cols),
        },
        "seed": seed,
        "params": params,
        "metrics": {"cv": metrics},
    }
    mf.write(out, manifest)
    log(
        f"{task}: cv accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
        f"ECE {metrics['ece_uncalibrated']:.4f} -> {metrics['ece_calibrated']:.4f} "
        f"(T={fit.head.temperature}, C={params['C']}) -> {out}"
    )
    return manifest
