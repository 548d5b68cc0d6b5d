"""Labelled text files for training and evaluation: any CSV or JSONL, any column names.

>>> data = load_labelled(Path("train.csv"), text_col="instruction", label_col="intent")
>>> train, test = stratified_split(data, test_size=0.2, seed=13)

Rows whose text (or label) is empty are skipped and counted, never silently dropped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CSV_SUFFIXES = (".csv", ".tsv")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


class DatasetError(ValueError):
    """A file that cannot be read as labelled rows (unknown format, missing column, ...)."""


@dataclass(frozen=True, slots=True)
class LabelledTexts:
    """Texts with one label each, plus optional extra columns (e.g. a frustration score)."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    text_col: str = "text"
    label_col: str = "label"
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    skipped_empty_text: int = 0
    skipped_empty_label: int = 0
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows: Sequence[int]) -> LabelledTexts:
        """The rows at ``rows`` (in that order), with the same column names."""
        return LabelledTexts(
            texts=tuple(self.texts[i] for i in rows),
            labels=tuple(self.labels[i] for i in rows),
            text_col=self.text_col,
            label_col=self.label_col,
            extra={k: tuple(v[i] for i in rows) for k, v in self.extra.items()},
            source=self.source,
        )

    def floats(self, column: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        """An extra column as floats; raises :class:`DatasetError` on a non-number."""
        values = self.extra[column]
        try:
            return np.array([float(v) for v in values], dtype=np.float64)
        except ValueError as exc:
            raise DatasetError(f"column {column!r} of {self.source}: {exc}") from None


def normalise_text(text: str) -> str:
    """NFC, whitespace collapsed, stripped: what the models see and fingerprints hash."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def fingerprint(data: LabelledTexts, *extra_cols: str) -> str:
    """sha256 of the normalised rows, in order: one JSON array ``[text, label, extras...]``
    per line. Independent of the file format and the column names."""
    digest = hashlib.sha256()
    for i, (text, label) in enumerate(zip(data.texts, data.labels, strict=True)):
        row = [normalise_text(text), label.strip(), *(data.extra[c][i] for c in extra_cols)]
        digest.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def _csv_rows(path: Path) -> tuple[list[str], Iterator[Mapping[str, Any]]]:
    f = path.open(newline="", encoding="utf-8-sig")
    reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    columns = list(reader.fieldnames or [])

    def rows() -> Iterator[Mapping[str, Any]]:
        with f:
            yield from reader

    return columns, rows()


def _jsonl_rows(path: Path) -> tuple[list[str], Iterator[Mapping[str, Any]]]:
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of objects
        records = json.loads(stripped)
    else:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{n}: not a JSON object ({exc.msg})") from None
    if not all(isinstance(r, dict) for r in records):
        raise DatasetError(f"{path}: expected one JSON object per line")
    columns: dict[str, None] = {}
    for r in records:
        columns.update(dict.fromkeys(r))
    return list(columns), iter(records)


def load_labelled(
    path: Path,
    text_col: str = "text",
    label_col: str = "label",
    extra_cols: Sequence[str] = (),
) -> LabelledTexts:
    """Read ``path`` (.csv/.tsv or .jsonl/.ndjson/.json) into :class:`LabelledTexts`.

    Raises :class:`DatasetError` naming the available columns when one is missing. Rows
    with an empty text or label are skipped and counted; texts are kept as written
    (normalisation happens when they are fingerprinted or embedded).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        columns, rows = _csv_rows(path)
    elif suffix in JSONL_SUFFIXES:
        columns, rows = _jsonl_rows(path)
    else:
        raise DatasetError(f"{path}: unknown format {suffix!r} (use .csv, .tsv or .jsonl)")
    missing = [c for c in (text_col, label_col, *extra_cols) if c not in columns]
    if missing:
        if hasattr(rows, "close"):
            rows.close()
        raise DatasetError(
            f"{path}: no column {', '.join(map(repr, missing))}; "
            f"available columns: {', '.join(columns) or '(none)'}"
        )
    texts: list[str] = []
    labels: list[str] = []
    extra: dict[str, list[str]] = {c: [] for c in extra_cols}
    empty_text = empty_label = 0
    for row in rows:
        text = "" if row.get(text_col) is None else str(row[text_col])
        label = "" if row.get(label_col) is None else str(row[label_col]).strip()
        if not text.strip():
            empty_text += 1
            continue
        if not label:
            empty_label += 1
            continue
        texts.append(text)
        labels.append(label)
        for c in extra_cols:
            extra[c].append("" if row.get(c) is None else str(row[c]).strip())
    return LabelledTexts(
        texts=tuple(texts),
        labels=tuple(labels),
        text_col=text_col,
        label_col=label_col,
        extra={c: tuple(v) for c, v in extra.items()},
        skipped_empty_text=empty_text,
        skipped_empty_label=empty_label,
        source=str(path),
    )


def stratified_split(
    data: LabelledTexts, test_size: float = 0.2, seed: int = 13
) -> tuple[LabelledTexts, LabelledTexts]:
    """Split every label's rows ``1 - test_size : test_size`` (rounded; a label with at
    least two rows keeps one on each side). Deterministic for a fixed seed; each side
    keeps the file's row order."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(data.labels):
        by_label.setdefault(label, []).append(i)
    test: list[int] = []
    for label in sorted(by_label):
        rows = np.array(by_label[label])
        rng.shuffle(rows)
        n_test = round(len(rows) * test_size)
        if len(rows) >= 2:
            n_test = min(max(n_test, 1), len(rows) - 1)
        test.extend(int(r) for r in rows[:n_test])
    test_set = set(test)
    train_rows = [i for i in range(len(data)) if i not in test_set]
    return data.subset(train_rows), data.subset(sorted(test))


def write_csv(data: LabelledTexts, path: Path) -> Path:
    """Write ``data`` as CSV with its own column names (text, label, extras)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra_cols = list(data.extra)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([data.text_col, data.label_col, *extra_cols])
        for i, (text, label) in enumerate(zip(data.texts, data.labels, strict=True)):
            writer.writerow([text, label, *(data.extra[c][i] for c in extra_cols)])
    return path


def describe(data: LabelledTexts) -> str:
    """One line for the log: rows, labels, skipped rows."""
    skipped = data.skipped_empty_text + data.skipped_empty_label
    note = ""
    if skipped:
        note = (
            f"; skipped {skipped} (empty text: {data.skipped_empty_text}, "
            f"empty label: {data.skipped_empty_label})"
        )
    return f"{data.source}: {len(data)} rows, {len(set(data.labels))} labels{note}"


def log(message: str) -> None:
    print(f"[models] {message}", file=sys.stderr, flush=True)
