"""The Triton model repository: stage built ONNX files into ``model_repo/`` and generate the
python-backend repository that the local tritonserver serves.

``model_repo/<name>/config.pbtxt`` is the production config (``platform: "onnxruntime_onnx"``,
KIND_GPU; ``configs/cpu.pbtxt`` is its CPU alternative). The tritonserver shipped by
nvidia-pytriton has no onnxruntime backend, so ``generate_local_repo`` derives from each
production config a ``backend: "python"`` config with the same inputs, outputs, batching and
dynamic batching, on KIND_CPU, whose ``model.py`` runs the same ONNX file with onnxruntime.

>>> stage_all("int8")                        # after `make models` (and the heads' build)
>>> generate_local_repo(Path(".data/triton/repo"))
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from models import paths
from models.triton_backend.manifest import MANIFEST, Manifest, read_manifest, write_manifest

REPO_ROOT = paths.REPO_ROOT
MODEL_REPO = REPO_ROOT / "model_repo"
BACKEND_DIR = Path(__file__).resolve().parent
# Files copied into each generated version folder: the stub imports model.py, which imports
# batching.py from the same folder.
BACKEND_FILES = ("model.py", "batching.py")
ONNX_FILE = "model.onnx"

# Served model name -> its built file under the models dir (models.paths.models_dir()).
SOURCES = {
    "minilm": "minilm/{variant}/model.onnx",
    "casestream_enrich": "enrich/{variant}/model.onnx",
}


def load_config(path: Path) -> Any:
    """Parse a ``config.pbtxt`` into a ``ModelConfig`` message (fails on unknown fields)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(Path(path).read_text(), model_config_pb2.ModelConfig())


def dump_config(config: Any) -> str:
    from google.protobuf import text_format

    return str(text_format.MessageToString(config))


def _place(source: Path, target: Path) -> None:
    """Hard-link ``source`` at ``target`` (copy across file systems), replacing it."""
    tmp = target.with_name(f".{target.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    tmp.replace(target)


def _source_extras(source: Path) -> dict[str, Any]:
    """``training_data`` and ``metrics`` from a ``manifest.json`` beside the built file (or
    one folder up), written by whoever trained or built it."""
    for candidate in (source.parent / MANIFEST, source.parent.parent / MANIFEST):
        if candidate.is_file():
            data = json.loads(candidate.read_text())
            extras = {k: data[k] for k in ("training_data", "metrics") if k in data}
            if "training_data" not in extras and "data" in data:  # the heads' manifests
                extras["training_data"] = data["data"]
            return extras
    return {}


# ONNX TensorProto element types -> Triton config data types (what the served models use).
_ONNX_TO_TRITON = {1: "TYPE_FP32", 6: "TYPE_INT32", 7: "TYPE_INT64", 10: "TYPE_FP16"}


def onnx_config_problems(config: Any, onnx_path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) comparing a ``ModelConfig``'s tensors with an ONNX file's.

    Errors: a missing name, another data type or rank, a fixed dimension that differs, or no
    variable batch dimension while ``max_batch_size > 0``. Warning: ``-1`` in the config
    where the file has a fixed size: the python backend accepts it, the onnxruntime backend
    rejects it, so production needs the number in ``config.pbtxt``.
    """
    import onnx
    from tritonclient.grpc import model_config_pb2 as pb

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    tensors = {
        **{v.name: v for v in graph.input},
        **{v.name: v for v in graph.output},
    }
    errors: list[str] = []
    notes: list[str] = []
    batched = config.max_batch_size > 0
    for io in [*config.input, *config.output]:
        value = tensors.get(io.name)
        if value is None:
            errors.append(f"{io.name}: not in {onnx_path.name}")
            continue
        tensor_type = value.type.tensor_type
        dtype = _ONNX_TO_TRITON.get(tensor_type.elem_type, f"onnx:{tensor_type.elem_type}")
        if dtype != pb.DataType.Name(io.data_type):
            errors.append(f"{io.name}: {dtype} in the file, {pb.DataType.Name(io.data_type)}")
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
        if batched:
            if not shape or shape[0] != -1:
                errors.append(f"{io.name}: file shape {shape} has no variable batch dimension")
                continue
            shape = shape[1:]
        if len(shape) != len(io.dims):
            errors.append(f"{io.name}: file shape {shape}, config dims {list(io.dims)}")
            continue
        for got, want in zip(shape, io.dims, strict=True):
            if got != -1 and want != -1 and got != want:
                errors.append(f"{io.name}: file shape {shape}, config dims {list(io.dims)}")
            elif got != -1 and want == -1:
                notes.append(
                    f"{io.name}: the file fixes dims {shape}, config.pbtxt says "
                    f"{list(io.dims)}: write the number for the onnxruntime backend"
                )
    return errors, notes


def stage_model(name: str, source: Path, *, repo: Path = MODEL_REPO, version: int = 1) -> Manifest:
    """Place ``source`` as ``<repo>/<name>/<version>/model.onnx`` and write its manifest.

    The model's ``config.pbtxt`` must already be in ``<repo>/<name>/``, and the file must fit
    it (``onnx_config_problems``: ValueError on errors, a warning for ``-1`` vs fixed).
    """
    model_dir = Path(repo) / name
    if not (model_dir / "config.pbtxt").is_file():
        raise FileNotFoundError(f"{model_dir / 'config.pbtxt'} is missing")
    if not Path(source).is_file():
        raise FileNotFoundError(f"{source} is missing: run `make models`")
    errors, notes = onnx_config_problems(load_config(model_dir / "config.pbtxt"), Path(source))
    if errors:
        raise ValueError(f"{source} does not fit {model_dir / 'config.pbtxt'}: {errors}")
    for note in notes:
        warnings.warn(f"{name}: {note}", stacklevel=2)
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    _place(Path(source), model_dir / str(version) / ONNX_FILE)
    extras = _source_extras(Path(source))
    return write_manifest(
        model_dir,
        name=name,
        version=version,
        file=f"{version}/{ONNX_FILE}",
        source=Path(source).resolve(),
        training_data=extras.get("training_data"),
        metrics=extras.get("metrics"),
    )


def stage_all(
    variant: str = "int8", models_root: Path | None = None, repo: Path = MODEL_REPO
) -> list[Manifest]:
    """Stage every served model whose built file exists; the others are skipped."""
    root = models_root if models_root is not None else paths.models_dir()
    staged = []
    for name, pattern in SOURCES.items():
        source = root / pattern.format(variant=variant)
        if source.is_file():
            staged.append(stage_model(name, source, repo=repo))
    return staged


def python_backend_config(
    production: Any, manifest: Manifest, *, join: str = "pad", max_queue_delay_us: int | None = None
) -> Any:
    """The local python-backend twin of a production ``ModelConfig``.

    Same name, inputs, outputs, max_batch_size, dynamic batching and onnxruntime thread
    parameters; ``backend: "python"`` on one KIND_CPU instance; inputs ``allow_ragged_batch``
    so that requests of different sequence lengths share an execution (``model.py`` joins
    them, see ``batching``). ``parameters`` also carry the manifest's identity, which the
    client reads back from the server's model config.
    """
    from tritonclient.grpc import model_config_pb2 as pb

    config = pb.ModelConfig()
    config.CopyFrom(production)
    config.ClearField("platform")
    config.backend = "python"
    config.ClearField("optimization")
    config.ClearField("default_model_filename")
    del config.instance_group[:]
    config.instance_group.add(count=1, kind=pb.ModelInstanceGroup.KIND_CPU)
    for tensor in config.input:
        tensor.allow_ragged_batch = True
    if max_queue_delay_us is not None and config.HasField("dynamic_batching"):
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    for key, value in {
        "onnx_file": ONNX_FILE,
        "join": join,
        "manifest_name": manifest.name,
        "manifest_version": str(manifest.version),
        "sha256": manifest.sha256,
    }.items():
        config.parameters[key].string_value = value
    return config


def generate_local_repo(
    out: Path,
    *,
    repo: Path = MODEL_REPO,
    join: str = "pad",
    max_queue_delay_us: int | None = None,
) -> list[Manifest]:
    """(Re)write ``out`` as a python-backend repository of every staged model in ``repo``.

    A model is staged when ``<repo>/<name>/manifest.json`` and its file exist. Each generated
    version folder holds ``model.py``, ``batching.py`` and a symlink to the staged ONNX file.
    Returns the manifests of the generated models (empty: nothing staged).
    """
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    generated = []
    for config_path in sorted(Path(repo).glob("*/config.pbtxt")):
        model_dir = config_path.parent
        if not (model_dir / MANIFEST).is_file():
            continue
        manifest = read_manifest(model_dir)
        onnx = (model_dir / manifest.file).resolve()
        if not onnx.is_file():
            continue
        production = load_config(config_path)
        if production.name != model_dir.name:
            raise ValueError(f"{config_path}: name {production.name!r} != {model_dir.name!r}")
        config = python_backend_config(
            production, manifest, join=join, max_queue_delay_us=max_queue_delay_us
        )
        target = out / model_dir.name
        version_dir = target / str(manifest.version)
        version_dir.mkdir(parents=True)
        (target / "config.pbtxt").write_text(dump_config(config))
        for name in BACKEND_FILES:
            shutil.copyfile(BACKEND_DIR / name, version_dir / name)
        (version_dir / ONNX_FILE).symlink_to(onnx)
        generated.append(manifest)
    return generated


def check_cpu_alternatives(repo: Path = MODEL_REPO) -> list[str]:
    """Differences between each ``config.pbtxt`` and its ``configs/cpu.pbtxt`` other than the
    instance group (they must not drift apart); empty when they agree."""
    problems = []
    for config_path in sorted(Path(repo).glob("*/config.pbtxt")):
        cpu_path = config_path.parent / "configs" / "cpu.pbtxt"
        if not cpu_path.is_file():
            problems.append(f"{cpu_path} is missing")
            continue
        main, cpu = load_config(config_path), load_config(cpu_path)
        main.ClearField("instance_group")
        cpu.ClearField("instance_group")
        if main != cpu:
            problems.append(f"{cpu_path} differs from {config_path} beyond instance_group")
    return problems
