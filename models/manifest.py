"""``manifest.json`` beside every built artefact: what it is, from what, and how good.

A manifest carries the model's name and version, the sha256 of each ``.onnx`` file, the
embedder it reads (name, variant, sha256), the training data's fingerprint (sha256 of the
normalised rows, :func:`models.datasets.fingerprint`), the seed and parameters, and the
metrics measured on held-out or cross-validated data. It holds no timestamps, so two
builds from the same inputs write the same bytes; the build steps compare the recorded
fingerprints and digests to decide whether anything needs rebuilding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.embedder import sha256_of

#: Bump on any change to how heads are trained or graphs are built.
RECIPE = "casestream-heads-v1:logreg-cgrid-cv+temperature+ridge-clip"
VERSION = "1"
FILENAME = "manifest.json"


def read(directory: Path) -> dict[str, Any]:
    """The manifest in ``directory``, or ``{}`` when missing or unreadable."""
    try:
        manifest = json.loads((directory / FILENAME).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def write(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write ``directory/manifest.json`` atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILENAME
    tmp = path.with_name(f".{FILENAME}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def write_labels(directory: Path, labels: dict[str, list[str]]) -> Path:
    """``labels.json``: ``{"intent": [...], "sentiment": [...]}``, each in output order."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "labels.json"
    path.write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n")
    return path


def read_labels(directory: Path) -> dict[str, list[str]]:
    labels: dict[str, list[str]] = json.loads((directory / "labels.json").read_text())
    return labels


def file_digests(directory: Path, names: list[str]) -> dict[str, str]:
    return {name: sha256_of(directory / name) for name in names}


def files_intact(directory: Path, manifest: dict[str, Any]) -> bool:
    """Every file the manifest lists exists with the recorded sha256."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, digest in files.items():
        path = directory / name
        if not path.is_file() or sha256_of(path) != digest:
            return False
    return True
