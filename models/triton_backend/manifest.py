"""``model_repo/<name>/manifest.json``: what exactly a served model is.

Written when a built ONNX file is staged into the repository (``repo.stage_model``); the
training step supplies ``training_data`` and ``metrics`` through the source manifest beside
its ONNX file. Format (JSON object, keys sorted)::

    {
      "format": 1,
      "name": "casestream_enrich",          # the Triton model name
      "version": 1,                         # the numbered version folder
      "file": "1/model.onnx",               # relative to the model's folder
      "sha256": "<hex of that file>",
      "source": "/abs/path/of/the/built/model.onnx",
      "created_at": "2026-01-01T00:00:00Z",
      "training_data": {"fingerprint": "sha256:<hex>", ...} | null,
      "metrics": {"accuracy": 0.99, ...} | {}
    }
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(paths: Iterable[Path]) -> str:
    """``sha256:<hex>`` over the files' names and contents, in sorted name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True)
class Manifest:
    name: str
    version: int
    file: str
    sha256: str
    source: str = ""
    created_at: str = ""
    training_data: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Manifest:
        if data.get("format", FORMAT) != FORMAT:
            raise ValueError(f"unsupported manifest format {data.get('format')!r}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def write_manifest(
    model_dir: Path,
    *,
    name: str,
    version: int,
    file: str,
    source: Path | str = "",
    training_data: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Manifest:
    """Hash ``model_dir/file`` and write ``model_dir/manifest.json`` (atomically)."""
    model_dir = Path(model_dir)
    manifest = Manifest(
        name=name,
        version=int(version),
        file=file,
        sha256=sha256_file(model_dir / file),
        source=str(source),
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        training_data=dict(training_data) if training_data is not None else None,
        metrics=dict(metrics or {}),
    )
    tmp = model_dir / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.to_json())
    tmp.replace(model_dir / MANIFEST)
    return manifest


def read_manifest(model_dir: Path, *, verify: bool = False) -> Manifest:
    """Read ``model_dir/manifest.json``; with ``verify``, check the file's sha256 too."""
    manifest = Manifest.from_mapping(json.loads((Path(model_dir) / MANIFEST).read_text()))
    if verify:
        actual = sha256_file(Path(model_dir) / manifest.file)
        if actual != manifest.sha256:
            raise ValueError(
                f"{model_dir / manifest.file}: sha256 {actual} != manifest {manifest.sha256}"
            )
    return manifest
