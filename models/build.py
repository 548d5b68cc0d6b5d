"""Build the embedder's artefacts: ``python -m models.build [--out-dir DIR] [--force]``.

Writes ``<models dir>/minilm/{fp32,int8}/model.onnx``, ``tokenizer.json`` and a
``manifest.json`` recording every file's sha256, the source weights' sha256 and the
build recipe. A second run checks the files against the manifest and rebuilds only what
is missing, altered, or made by another recipe or from other weights. Progress goes to
stderr; the summary (JSON) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from models import paths
from models.embedder import NAME, sha256_of
from models.embedder_graph import build_graph, save
from models.quantize import quantize_int8

RECIPE = "minilm-onnx-opset17-v2+int8-matmul-perchannel-ffnout-fp32"  # bump on any change
TOKENIZER = "tokenizer.json"
FP32 = "fp32/model.onnx"
INT8 = "int8/model.onnx"


def _log(message: str) -> None:
    print(f"[models] {message}", file=sys.stderr, flush=True)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
        return manifest
    except (OSError, ValueError):
        return {}


def _replace(tmp: Path, final: Path) -> str:
    """Move a finished file into place atomically; return its sha256."""
    os.replace(tmp, final)
    return sha256_of(final)


def build_embedder(out_dir: Path | None = None, force: bool = False) -> dict[str, Any]:
    """Build fp32 + int8 under ``<out_dir or paths.models_dir()>/minilm``; idempotent.

    Returns the manifest: ``{"name", "recipe", "source_sha256", "files": {relative path:
    sha256}}`` plus ``"dir"``, ``"built"`` (the files made by this call) and ``"seconds"``.
    """
    started = time.perf_counter()
    base = paths.minilm_dir(out_dir)
    source = paths.source_model_dir()
    source_sha256 = sha256_of(source / "model.safetensors")
    manifest_path = base / "manifest.json"
    previous = _read_manifest(manifest_path)
    reusable = (
        not force
        and previous.get("recipe") == RECIPE
        and previous.get("source_sha256") == source_sha256
    )
    known: dict[str, str] = previous.get("files", {}) if reusable else {}

    def valid(rel: str) -> bool:
        path = base / rel
        return rel in known and path.is_file() and sha256_of(path) == known[rel]

    files: dict[str, str] = {}
    built: list[str] = []
    for rel in (TOKENIZER, FP32, INT8):
        if valid(rel) and not (rel == INT8 and FP32 in built):
            files[rel] = known[rel]
            _log(f"{rel}: up to date")
            continue
        final = base / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.stem}.tmp{final.suffix}")
        t0 = time.perf_counter()
        if rel == TOKENIZER:
            shutil.copyfile(source / TOKENIZER, tmp)
        elif rel == FP32:
            _log(f"{rel}: building the ONNX graph from {source / 'model.safetensors'}")
            save(build_graph(source), tmp)
        else:
            _log(f"{rel}: quantizing (dynamic int8, MatMul, per channel)")
            quantize_int8(base / FP32, tmp)
        files[rel] = _replace(tmp, final)
        built.append(rel)
        _log(f"{rel}: {final.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f}s")

    manifest = {"name": NAME, "recipe": RECIPE, "source_sha256": source_sha256, "files": files}
    if built or manifest != previous:
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    seconds = round(time.perf_counter() - started, 2)
    return {**manifest, "dir": str(base), "built": built, "seconds": seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.build", description=__doc__)
    parser.add_argument(
        "--out-dir", type=Path, default=None, help=f"models dir (default: {paths.models_dir()})"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    result = build_embedder(args.out_dir, force=args.force)
    for rel, digest in result["files"].items():
        _log(f"sha256 {digest}  {Path(result['dir']) / rel}")
    _log(f"done in {result['seconds']}s (built: {', '.join(result['built']) or 'nothing'})")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
