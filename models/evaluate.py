"""Evaluate a built model on a labelled file: accuracy, macro-F1, per-class table, ECE.

The model is either a head directory written by ``casestream train`` (``intent.onnx`` or
``sentiment.onnx`` reading embeddings: the texts are embedded first) or a merged enrich
directory (``model.onnx`` reading token ids: exactly what the services run). Either way
the ONNX file itself is run with onnxruntime, so the figures are the shipped model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from sklearn.metrics import f1_score, precision_recall_fscore_support

from models import manifest as mf
from models import paths
from models.datasets import log, normalise_text
from models.embedder import Embedder, load_tokenizer
from models.heads import F32, F64, expected_calibration_error
from models.train import FRUSTRATION, OUTPUTS, embed_texts

OOS_LABELS = ("out_of_scope", "oos")


@dataclass(frozen=True, slots=True)
class Outputs:
    """A model's answers for some texts: class probabilities in ``labels`` order."""

    labels: tuple[str, ...]
    probs: F64
    frustration: F64 | None
    model: dict[str, str]


def default_model_dir(variant: str = "int8", root: Path | None = None) -> Path:
    return (root if root is not None else paths.models_dir()) / "enrich" / variant


def _session(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_enrich(
    model_dir: Path, texts: Sequence[str], root: Path | None = None, batch: int = 64
) -> dict[str, F32]:
    """All outputs of the merged model for ``texts`` (rows in order), length-sorted batches."""
    tokenizer = load_tokenizer(paths.minilm_dir(root) / "tokenizer.json")
    session = _session(model_dir / "model.onnx")
    names = [o.name for o in session.get_outputs()]
    encodings = tokenizer.encode_batch([normalise_text(t) for t in texts])
    lengths = np.array([sum(e.attention_mask) for e in encodings])
    order = np.argsort(lengths, kind="stable")
    results: dict[str, F32] = {}
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        width = int(lengths[rows].max())
        ids = np.array([encodings[r].ids[:width] for r in rows], dtype=np.int64)
        mask = np.array([encodings[r].attention_mask[:width] for r in rows], dtype=np.int64)
        values = session.run(names, {"input_ids": ids, "attention_mask": mask})
        for name, value in zip(names, values, strict=True):
            if name not in results:
                results[name] = np.empty((len(texts), *value.shape[1:]), dtype=np.float32)
            results[name][rows] = value
        if len(order) > 2048 and (start // batch) % 32 == 31:
            log(f"ran {min(start + batch, len(order))}/{len(order)}")
    return results


def predict(
    model_dir: Path,
    texts: Sequence[str],
    task: str,
    variant: str = "int8",
    root: Path | None = None,
) -> Outputs:
    """Run the head or enrich model in ``model_dir`` on ``texts`` for ``task``."""
    labels = mf.read_labels(model_dir)
    if task not in labels:
        raise ValueError(f"{model_dir} has no {task} model (labels.json: {sorted(labels)})")
    manifest = mf.read(model_dir)
    info = {"name": str(manifest.get("name", model_dir.name)), "dir": str(model_dir)}
    head_path = model_dir / f"{task}.onnx"
    if head_path.is_file():
        embedder = Embedder.load(variant, root)
        info["embedder"] = f"{embedder.name}/{embedder.variant}"
        x = embed_texts(embedder, texts)
        session = _session(head_path)
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(names, {"sentence_embedding": x}), strict=True))
    elif (model_dir / "model.onnx").is_file():
        info["variant"] = str(manifest.get("variant", ""))
        outputs = run_enrich(model_dir, texts, root)
    else:
        raise FileNotFoundError(f"{model_dir}: neither {task}.onnx nor model.onnx")
    frustration = outputs.get(FRUSTRATION) if task == "sentiment" else None
    return Outputs(
        labels=tuple(labels[task]),
        probs=outputs[OUTPUTS[task]].astype(np.float64),
        frustration=None if frustration is None else frustration[:, 0].astype(np.float64),
        model=info,
    )


def classification_report(
    truth: Sequence[str], outputs: Outputs, frustration: F64 | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1, ECE (15 bins), a per-class table, and the recall of the
    out-of-scope label when the data has one (``out_of_scope`` or ``oos``)."""
    index = {label: i for i, label in enumerate(outputs.labels)}
    y = np.array([index.get(t, -1) for t in truth], dtype=np.int64)
    pred = [outputs.labels[i] for i in outputs.probs.argmax(axis=1)]
    classes = sorted(set(truth) | set(pred))
    precision, recall, f1, support = precision_recall_fscore_support(
        list(truth), pred, labels=classes, zero_division=0
    )
    per_class = {
        c: {
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }
    report: dict[str, Any] = {
        "rows": len(truth),
        "accuracy": round(float(np.mean(np.array(pred) == np.array(truth))), 6),
        "macro_f1": round(float(f1_score(list(truth), pred, average="macro", zero_division=0)), 6),
        "ece": round(expected_calibration_error(outputs.probs, y), 6),
        "unknown_labels": sorted(set(truth) - set(index)),
    }
    for oos in OOS_LABELS:
        if oos in per_class and per_class[oos]["support"]:
            report["oos_recall"] = per_class[oos]["recall"]
            report["oos_precision"] = per_class[oos]["precision"]
    if "negative" in per_class:
        report["negative_recall"] = per_class["negative"]["recall"]
        report["negative_precision"] = per_class["negative"]["precision"]
    if frustration is not None and outputs.frustration is not None:
        report["frustration_mae"] = round(
            float(np.mean(np.abs(outputs.frustration - frustration))), 6
        )
    report["per_class"] = per_class
    return report


def format_report(report: dict[str, Any]) -> str:
    """The human-readable part: headline figures, then the per-class table."""
    lines = [
        f"rows {report['rows']}  accuracy {report['accuracy']:.4f}  "
        f"macro-F1 {report['macro_f1']:.4f}  ECE {report['ece']:.4f}"
    ]
    for key in ("oos_recall", "negative_recall", "negative_precision", "frustration_mae"):
        if key in report:
            lines.append(f"{key.replace('_', ' ')}: {report[key]:.4f}")
    if report["unknown_labels"]:
        lines.append(f"labels the model does not know: {', '.join(report['unknown_labels'])}")
    width = max([len("class"), *(len(c) for c in report["per_class"])])
    lines.append(f"{'class':<{width}}  precision  recall      f1  support")
    for c, row in report["per_class"].items():
        lines.append(
            f"{c:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}"
            f"  {row['support']:7d}"
        )
    return "\n".join(lines)
