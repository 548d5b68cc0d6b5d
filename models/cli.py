"""``casestream`` commands for the models: train, eval, split, build-default.

Every command prints its human-readable output first and ends with one JSON line on
stdout (the figures, for scripts); progress goes to stderr. Wire into a parent app with
:func:`register` (``casestream train``, ``casestream eval intents|sentiment``,
``casestream models split|build-default``) or run standalone: ``python -m models.cli``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from models import paths
from models.datasets import DatasetError, describe, load_labelled, stratified_split, write_csv

app = typer.Typer(
    help="Train, evaluate and build the intent and sentiment models.", no_args_is_help=True
)
eval_app = typer.Typer(
    help="Evaluate a model on a labelled CSV or JSONL file.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")

DataOpt = Annotated[Path, typer.Option("--data", help="Labelled .csv/.tsv/.jsonl file.")]
TextCol = Annotated[str, typer.Option("--text-col", help="Column holding the text.")]
LabelCol = Annotated[str, typer.Option("--label-col", help="Column holding the label.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for CV folds and splits.")]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="Head or enrich dir (default: enrich/VARIANT).")
]
VariantOpt = Annotated[str, typer.Option(help="Embedder variant for a head dir.")]


def _json_line(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(payload, sort_keys=True, ensure_ascii=False))


def _load(path: Path, text_col: str, label_col: str, extra: list[str]) -> Any:
    try:
        return load_labelled(path, text_col, label_col, extra)
    except DatasetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("train")
def train_command(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Directory for the head's artefacts.")],
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    task: Annotated[str, typer.Option("--task", help="intent or sentiment.")] = "intent",
    seed: SeedOpt = 13,
    frustration_col: Annotated[
        str | None, typer.Option("--frustration-col", help="Score column in [0, 1] (sentiment).")
    ] = None,
    variant: Annotated[str, typer.Option(help="Embedder variant to train on.")] = "fp32",
) -> None:
    """Train a calibrated head on frozen embeddings; write DIR/{TASK.onnx,labels.json,...}."""
    from models.train import TASKS, train

    if task not in TASKS:
        raise typer.BadParameter(f"expected one of {TASKS}", param_hint="--task")
    extra = [frustration_col] if frustration_col else []
    dataset = _load(data, text_col, label_col, extra)
    try:
        manifest = train(dataset, out, task, seed, frustration_col, variant=variant)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    cv = manifest["metrics"]["cv"]
    typer.echo(f"wrote {out}/{task}.onnx ({manifest['data']['rows']} rows)")
    typer.echo(
        f"cross-validated: accuracy {cv['accuracy']:.4f}, macro-F1 {cv['macro_f1']:.4f}, "
        f"ECE {cv['ece_uncalibrated']:.4f} -> {cv['ece_calibrated']:.4f} calibrated "
        f"(T={manifest['params']['temperature']}, C={manifest['params']['C']})"
    )
    _json_line({"out": str(out), "task": task, **cv, "params": manifest["params"]})


def _evaluate(
    task: str,
    model: Path | None,
    data: Path,
    text_col: str,
    label_col: str,
    variant: str,
    frustration_col: str | None = None,
) -> None:
    from models.evaluate import classification_report, default_model_dir, format_report, predict

    model_dir = model if model is not None else default_model_dir(variant)
    extra = [frustration_col] if frustration_col else []
    dataset = _load(data, text_col, label_col, extra)
    typer.echo(describe(dataset), err=True)
    try:
        outputs = predict(model_dir, dataset.texts, task, variant=variant)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    target = dataset.floats(frustration_col) if frustration_col else None
    report = classification_report(dataset.labels, outputs, target)
    typer.echo(f"model: {outputs.model['dir']}  data: {data}")
    typer.echo(format_report(report))
    _json_line({"task": task, "model": str(model_dir), "data": str(data), **report})


@eval_app.command("intents")
def eval_intents(
    data: DataOpt,
    model: ModelOpt = None,
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    variant: VariantOpt = "int8",
) -> None:
    """Accuracy, macro-F1, per-class table, ECE and out-of-scope recall of an intent model."""
    _evaluate("intent", model, data, text_col, label_col, variant)


@eval_app.command("sentiment")
def eval_sentiment(
    data: DataOpt,
    model: ModelOpt = None,
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    variant: VariantOpt = "int8",
    frustration_col: Annotated[
        str | None, typer.Option("--frustration-col", help="Also score the frustration output.")
    ] = None,
) -> None:
    """Accuracy, macro-F1, per-class table, ECE and negative-class recall/precision."""
    _evaluate("sentiment", model, data, text_col, label_col, variant, frustration_col)


@app.command("split")
def split_command(
    data: DataOpt,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Writes train.csv and test.csv.")],
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    test_size: Annotated[float, typer.Option(help="Share of each label held out.")] = 0.2,
    seed: SeedOpt = 13,
) -> None:
    """Stratified train/test split of a labelled file (keeps the column names)."""
    dataset = _load(data, text_col, label_col, [])
    train, test = stratified_split(dataset, test_size=test_size, seed=seed)
    train_path, test_path = (
        write_csv(train, out_dir / "train.csv"),
        write_csv(test, out_dir / "test.csv"),
    )
    typer.echo(describe(dataset), err=True)
    typer.echo(f"train {len(train)} rows -> {train_path}; test {len(test)} rows -> {test_path}")
    _json_line(
        {
            "train": str(train_path),
            "test": str(test_path),
            "train_rows": len(train),
            "test_rows": len(test),
            "seed": seed,
        }
    )


@app.command("build-default")
def build_default_command(
    seed: SeedOpt = 13,
    force: Annotated[bool, typer.Option(help="Rebuild even if up to date.")] = False,
) -> None:
    """Train the default heads on the seed corpus and compose enrich/{int8,fp32}."""
    from models.compose import build_default_models

    result = build_default_models(seed=seed, force=force)
    typer.echo(f"models in {paths.models_dir()}")
    _json_line(result)


def register(parent: typer.Typer) -> None:
    """Add ``train``, ``eval`` and ``models`` (everything, incl. split/build-default)."""
    parent.command("train")(train_command)
    parent.add_typer(eval_app, name="eval")
    parent.add_typer(app, name="models")


if __name__ == "__main__":
    app()
