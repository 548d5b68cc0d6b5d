"""The merged enrich model, and the default models built from the seed corpus.

:func:`compose_enrich` appends the intent, sentiment and frustration heads to the
embedder's graph, so one ONNX file maps ``input_ids``/``attention_mask`` (INT64
``[batch, seq]``) to ``sentence_embedding`` ``[batch, 384]``, ``intent_probs``
``[batch, K]``, ``sentiment_probs`` ``[batch, 3]`` and ``frustration`` ``[batch, 1]``
(FP32). The heads' nodes are the very ones of their standalone graphs
(:mod:`models.heads`), read from the exact weights the trainer saved.

:func:`build_default_models` trains the heads on ``models/data/seed_*.csv`` into
``<models dir>/heads/{intent,sentiment}`` and composes ``<models dir>/enrich/{int8,fp32}``;
each step is skipped when its manifest already records the same inputs (data
fingerprint, seed, recipe, embedder and head digests) and its files are intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from models import manifest as mf
from models import paths
from models.datasets import fingerprint, load_labelled, log
from models.embedder import NAME, VARIANTS, Embedder, sha256_of
from models.evaluate import classification_report, predict
from models.heads import (
    EMBEDDING,
    RegressionHead,
    SoftmaxHead,
    load_weights,
    regression_part,
    save_model,
    softmax_part,
)
from models.train import C_GRID, FRUSTRATION, OUTPUTS, SEED, train

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAIN_VARIANT = "fp32"  # heads learn from the reference embeddings; both variants use them
SEED_DATA: dict[str, dict[str, Any]] = {
    "intent": {"file": "seed_intents.csv", "text_col": "text", "label_col": "intent"},
    "sentiment": {
        "file": "seed_sentiment.csv",
        "text_col": "text",
        "label_col": "sentiment",
        "frustration_col": "frustration",
    },
}


def compose_enrich(
    embedder_path: Path, intent: SoftmaxHead, sentiment: SoftmaxHead, frustration: RegressionHead
) -> onnx.ModelProto:
    """The embedder graph with the three heads appended (see the module docstring)."""
    model = onnx.load(str(embedder_path))
    graph = model.graph
    if [o.name for o in graph.output] != [EMBEDDING]:
        raise ValueError(f"{embedder_path}: expected one output {EMBEDDING!r}")
    parts = [
        softmax_part(intent, OUTPUTS["intent"], prefix="intent_head"),
        softmax_part(sentiment, OUTPUTS["sentiment"], prefix="sentiment_head"),
        regression_part(frustration, FRUSTRATION, prefix="frustration_head"),
    ]
    taken = {n.name for n in graph.node} | {t.name for t in graph.initializer}
    for part in parts:
        clash = taken & ({n.name for n in part.nodes} | {t.name for t in part.initializers})
        if clash:
            raise ValueError(f"name clash between the embedder and a head: {sorted(clash)}")
        graph.node.extend(part.nodes)
        graph.initializer.extend(part.initializers)
        graph.output.append(part.output)
    graph.name = "casestream-enrich"
    onnx.checker.check_model(model)
    return model


def _heads_current(out: Path, data_fp: str, embedder_sha: str, seed: int) -> bool:
    m = mf.read(out)
    return (
        m.get("recipe") == mf.RECIPE
        and m.get("seed") == seed
        and [g.get("C") for g in m.get("params", {}).get("grid", [])] == list(C_GRID)
        and m.get("data", {}).get("fingerprint") == data_fp
        and m.get("embedder", {}).get("sha256") == embedder_sha
        and mf.files_intact(out, m)
    )


def _heldout(model_dir: Path, task: str, variant: str, root: Path | None) -> dict[str, Any]:
    """Figures on ``seed_*_eval.csv`` (if present) for ``task``, without the per-class table."""
    spec = SEED_DATA[task]
    path = DATA_DIR / spec["file"].replace(".csv", "_eval.csv")
    if not path.is_file():
        return {}
    extra = [spec["frustration_col"]] if "frustration_col" in spec else []
    data = load_labelled(path, spec["text_col"], spec["label_col"], extra)
    outputs = predict(model_dir, data.texts, task, variant=variant, root=root)
    target = data.floats(extra[0]) if extra else None
    report = classification_report(data.labels, outputs, target)
    report.pop("per_class")
    return {"evaluation": f"held out: {path.name}", **report}


def build_heads(root: Path | None = None, seed: int = SEED, force: bool = False) -> dict[str, Any]:
    """Train the default intent and sentiment heads on the seed corpus, if out of date."""
    base = (root if root is not None else paths.models_dir()) / "heads"
    embedder_sha = sha256_of(paths.minilm_dir(root) / TRAIN_VARIANT / "model.onnx")
    embedder: Embedder | None = None
    result: dict[str, Any] = {}
    for task, spec in SEED_DATA.items():
        extra = [spec["frustration_col"]] if "frustration_col" in spec else []
        data = load_labelled(DATA_DIR / spec["file"], spec["text_col"], spec["label_col"], extra)
        out = base / task
        if not force and _heads_current(out, fingerprint(data, *extra), embedder_sha, seed):
            log(f"heads/{task}: up to date")
            result[task] = {"dir": str(out), "built": False}
            continue
        embedder = embedder or Embedder.load(TRAIN_VARIANT, root)
        manifest = train(
            data,
            out,
            task=task,
            seed=seed,
            frustration_col=spec.get("frustration_col"),
            embedder=embedder,
        )
        heldout = _heldout(out, task, TRAIN_VARIANT, root)
        if heldout:
            manifest["metrics"]["heldout"] = heldout
            mf.write(out, manifest)
        result[task] = {"dir": str(out), "built": True}
    return result


def build_enrich(root: Path | None = None, force: bool = False) -> dict[str, Any]:
    """Compose ``enrich/{int8,fp32}`` from the default heads, if out of date."""
    models = root if root is not None else paths.models_dir()
    heads = {task: mf.read(models / "heads" / task) for task in SEED_DATA}
    head_digests = {task: m["files"][f"{task}.onnx"] for task, m in heads.items()}
    weights = {
        **load_weights(models / "heads" / "intent" / "weights.npz"),
        **load_weights(models / "heads" / "sentiment" / "weights.npz"),
    }
    result: dict[str, Any] = {}
    for variant in VARIANTS:
        out = models / "enrich" / variant
        embedder_path = paths.minilm_dir(root) / variant / "model.onnx"
        embedder_sha = sha256_of(embedder_path)
        previous = mf.read(out)
        if (
            not force
            and previous.get("recipe") == mf.RECIPE
            and previous.get("embedder", {}).get("sha256") == embedder_sha
            and {t: h.get("sha256") for t, h in previous.get("heads", {}).items()} == head_digests
            and mf.files_intact(out, previous)
        ):
            log(f"enrich/{variant}: up to date")
            result[variant] = {"dir": str(out), "built": False}
            continue
        intent, sentiment, frustration = (weights[k] for k in ("intent", "sentiment", FRUSTRATION))
        assert isinstance(intent, SoftmaxHead) and isinstance(sentiment, SoftmaxHead)
        assert isinstance(frustration, RegressionHead)
        log(f"enrich/{variant}: composing {embedder_path.name} + heads")
        save_model(
            compose_enrich(embedder_path, intent, sentiment, frustration), out / "model.onnx"
        )
        mf.write_labels(out, {"intent": list(intent.labels), "sentiment": list(sentiment.labels)})
        files = mf.file_digests(out, ["model.onnx", "labels.json"])
        metrics: dict[str, Any] = {}
        for task, m in heads.items():
            metrics[task] = {"cv": m["metrics"]["cv"]}
            heldout = _heldout(out, task, variant, root)
            if heldout:
                metrics[task]["heldout"] = heldout
        manifest = {
            "name": f"casestream-enrich-{variant}",
            "version": mf.VERSION,
            "recipe": mf.RECIPE,
            "variant": variant,
            "sha256": files["model.onnx"],
            "files": files,
            "inputs": ["input_ids", "attention_mask"],
            "outputs": [EMBEDDING, OUTPUTS["intent"], OUTPUTS["sentiment"], FRUSTRATION],
            "embedder": {"name": NAME, "variant": variant, "sha256": embedder_sha},
            "heads": {
                task: {"sha256": head_digests[task], "trained_on_embedder": m["embedder"]}
                for task, m in heads.items()
            },
            "data": {task: m["data"] for task, m in heads.items()},
            "seed": heads["intent"]["seed"],
            "metrics": metrics,
        }
        mf.write(out, manifest)
        result[variant] = {"dir": str(out), "built": True, "sha256": files["model.onnx"]}
    return result


def build_default_models(
    root: Path | None = None, seed: int = SEED, force: bool = False
) -> dict[str, Any]:
    """``make models``' entry point: default heads, then the merged enrich models.

    Builds the embedder first when its files are missing (:func:`models.build.build_embedder`).
    """
    minilm = paths.minilm_dir(root)
    if not all((minilm / v / "model.onnx").is_file() for v in VARIANTS):
        from models.build import build_embedder

        build_embedder(root)
    return {
        "heads": build_heads(root, seed=seed, force=force),
        "enrich": build_enrich(root, force=force),
    }
