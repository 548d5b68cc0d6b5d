"""The local Triton Inference Server: the real ``tritonserver`` 2.51 binary from the
``nvidia-pytriton`` wheel, run bare on 127.0.0.1 over a generated python-backend repository.

* ``make triton-env`` builds ``.venv-triton`` (``/usr/bin/python3.11``, numpy < 2, pins in
  ``models/triton_backend/requirements.txt``) and the backends directory
  (``prepare_triton_backends``): the wheel has no onnxruntime backend, so the python backend
  runs the ONNX files (``models/triton_backend/model.py``).
* ``triton_up`` stages the built models into ``model_repo/`` (``models.triton_backend.repo``),
  generates ``.data/triton/repo`` from the production configs, starts the server and polls
  ``/v2/health/ready``. Pid file and log live under ``.data/triton``.
* ``triton_down`` stops it (SIGTERM, then SIGKILL), ends stubs left by a killed server, and
  removes ``/dev/shm/triton_python_backend_shm_region_*`` files that no live process maps.

Ports: HTTP 18000, gRPC 18001, metrics 18002, or ``$CASESTREAM_LOCAL_TRITON_{HTTP,GRPC,
METRICS}_PORT``. ``main(["prepare"|"up"|"down"|"status"])`` is a small CLI (``make triton``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.triton_backend.server_env import STUB, TRITON_VENV, TritonEnv
from models.triton_backend.server_env import prepare_triton_backends as _prepare
from models.triton_backend.server_env import triton_env as _triton_env
from streams.services.common import HOST, REPO_ROOT, ServiceError, ServiceStatus, say
from streams.services.process import (
    Daemon,
    alive,
    cmdline,
    find_processes,
    port_open,
    tail,
    terminate,
)

TRITON_DATA_DIR = Path(".data/triton")
TRITON_PORT_ENVS = {
    "http": ("CASESTREAM_LOCAL_TRITON_HTTP_PORT", 18000),
    "grpc": ("CASESTREAM_LOCAL_TRITON_GRPC_PORT", 18001),
    "metrics": ("CASESTREAM_LOCAL_TRITON_METRICS_PORT", 18002),
}
SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"
_MARKER = "tritonserver"
_PID, _LOG, _REPO = "tritonserver.pid", "tritonserver.log", "repo"


@dataclass(frozen=True)
class TritonAddress:
    """Where a local tritonserver listens."""

    http_port: int
    grpc_port: int
    metrics_port: int

    @property
    def http(self) -> str:
        return f"{HOST}:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def metrics(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def __str__(self) -> str:
        return f"grpc {self.grpc}, http {self.http}, metrics {self.metrics}"


def triton_ports(
    http: int | None = None, grpc: int | None = None, metrics: int | None = None
) -> TritonAddress:
    """Explicit ports, else ``$CASESTREAM_LOCAL_TRITON_*_PORT``, else 18000/18001/18002."""
    chosen = {}
    for kind, given in (("http", http), ("grpc", grpc), ("metrics", metrics)):
        env, default = TRITON_PORT_ENVS[kind]
        raw = os.environ.get(env, "").strip()
        if given is not None:
            chosen[kind] = given
        elif raw.isdigit() and 0 < int(raw) < 65536:
            chosen[kind] = int(raw)
        elif raw:
            raise ServiceError(f"{env}={raw!r} is not a port number")
        else:
            chosen[kind] = default
    return TritonAddress(chosen["http"], chosen["grpc"], chosen["metrics"])


def triton_env(root: Path = REPO_ROOT) -> TritonEnv:
    """``.venv-triton``; ``ServiceError`` (run ``make triton-env``) when it is not built."""
    try:
        return _triton_env(root)
    except FileNotFoundError as exc:
        raise ServiceError(str(exc)) from None


def prepare_triton_backends(root: Path = REPO_ROOT) -> Path:
    """Lay out the backends directory the server expects (idempotent); return it."""
    try:
        return _prepare(root)
    except FileNotFoundError as exc:
        raise ServiceError(str(exc)) from None


def _mapped_shm() -> set[str]:
    """Names of the shm region files that some live process maps or holds open."""
    held: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "maps").read_text().splitlines():
                if SHM_PREFIX in line:
                    held.add(Path(line.split()[-1]).name)
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if SHM_PREFIX in target:
                        held.add(Path(target).name)
    return held


def stale_shm_regions() -> list[Path]:
    """Python-backend shm files that no live process maps (left by killed stubs)."""
    regions = sorted(SHM_DIR.glob(f"{SHM_PREFIX}*"))
    if not regions:
        return []
    held = _mapped_shm()
    return [p for p in regions if p.name not in held]


def clean_shm() -> list[Path]:
    removed = []
    for path in stale_shm_regions():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def ready(address: TritonAddress, timeout: float = 1.0) -> bool:
    """True when ``/v2/health/ready`` answers 200 (every model loaded and ready)."""
    url = f"http://{address.http}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _paths(root: Path, data_dir: Path | None) -> dict[str, Path]:
    data = (Path(data_dir) if data_dir is not None else Path(root) / TRITON_DATA_DIR).resolve()
    return {"data": data, "pid": data / _PID, "log": data / _LOG, "repo": data / _REPO}


def _daemon(paths: dict[str, Path]) -> Daemon:
    return Daemon(
        service="triton",
        noun="tritonserver",
        marker=_MARKER,
        data=paths["data"],
        pid_file=paths["pid"],
        orphans=lambda: find_processes(_MARKER, f"--model-repository={paths['repo']}"),
    )


def _running_address(pid: int) -> TritonAddress | None:
    flags = dict(a.split("=", 1) for a in cmdline(pid).split() if a.startswith("--") and "=" in a)
    with contextlib.suppress(KeyError, ValueError):
        return TritonAddress(
            int(flags["--http-port"]), int(flags["--grpc-port"]), int(flags["--metrics-port"])
        )
    return None


def triton_running_address(
    root: Path = REPO_ROOT, data_dir: Path | None = None
) -> TritonAddress | None:
    """Where our running tritonserver listens (from its command line), or None."""
    pid, _ = _daemon(_paths(Path(root), data_dir)).running()
    return _running_address(pid) if pid is not None else None


def triton_up(
    root: Path = REPO_ROOT,
    *,
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    data_dir: Path | None = None,
    model_repo: Path | None = None,
    variant: str = "fp32",
    join: str = "pad",
    max_queue_delay_us: int | None = None,
    timeout: float = 60.0,
) -> str:
    """Start (or reuse) the local tritonserver; once ready, return its gRPC address
    (``127.0.0.1:18001``; HTTP and metrics: ``triton_status`` or the ports given).

    Without ``model_repo`` the built ``variant`` of each model is first staged into
    ``<root>/model_repo``; with one, that repository is used as staged. ``join`` and
    ``max_queue_delay_us`` go into the generated python-backend configs.

    ``variant`` defaults to fp32: a batched fp32 run gives each request what a run of its own
    gives (within 1e-6), whereas the int8 model's dynamic activation scales span the whole
    run, so a text's int8 outputs would depend on what it was batched with (cosine down to
    0.977 measured) unless ``join="request"``, which gives up batching.
    """
    from models.triton_backend.repo import generate_local_repo, stage_all

    root = Path(root)
    address = triton_ports(http_port, grpc_port, metrics_port)
    paths = _paths(root, data_dir)
    daemon = _daemon(paths)
    env = triton_env(root)
    paths["data"].mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + timeout
    with daemon.locked():
        pid = daemon.adopt()
        if pid is not None:
            running = _running_address(pid) or address
            while not ready(running):
                if not alive(pid) or time.monotonic() >= deadline:
                    raise ServiceError(
                        f"tritonserver pid {pid} is not ready:\n{tail(paths['log'])}"
                    )
                time.sleep(0.1)
            return running.grpc
        busy = [address.http_port, address.grpc_port, address.metrics_port]
        if any(port_open(p, timeout=0.3) for p in busy):
            raise ServiceError(
                f"one of the ports {busy} on {HOST} is in use by another process: stop it or "
                "set CASESTREAM_LOCAL_TRITON_{HTTP,GRPC,METRICS}_PORT"
            )
        repo = Path(model_repo) if model_repo is not None else root / "model_repo"
        if model_repo is None:
            stage_all(variant, repo=repo)
        served = generate_local_repo(
            paths["repo"], repo=repo, join=join, max_queue_delay_us=max_queue_delay_us
        )
        if not served:
            raise ServiceError(f"no model staged in {repo}: run `make models` first")
        backends = prepare_triton_backends(root)
        clean_shm()
        cmd = [
            "/usr/bin/env",
            *(f"{k}={v}" for k, v in env.environment().items()),
            str(env.binary),
            f"--model-repository={paths['repo']}",
            f"--backend-directory={backends}",
            f"--http-address={HOST}",
            f"--http-port={address.http_port}",
            f"--grpc-address={HOST}",
            f"--grpc-port={address.grpc_port}",
            f"--metrics-address={HOST}",
            f"--metrics-port={address.metrics_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--strict-readiness=true",
            "--exit-on-error=true",
            "--log-verbose=0",
        ]
        names = ", ".join(f"{m.name} v{m.version}" for m in served)
        say("triton", f"starting tritonserver ({names}) on {address}")
        child = daemon.start(cmd, paths["log"])

        def cleanup() -> None:
            _end_stubs(paths["repo"])
            clean_shm()

        daemon.await_ready(
            child,
            lambda: ready(address),
            deadline=deadline,
            not_ready=f"tritonserver was not ready within {timeout}s",
            log_file=paths["log"],
            on_failure=cleanup,
        )
        say("triton", f"ready on {address} (pid {child}) in {time.monotonic() - started:.1f}s")
        return address.grpc


def _end_stubs(repo: Path) -> None:
    """Stop python stubs still running models of ``repo`` (their server was killed)."""
    for pid in find_processes(STUB, f"{repo}/"):
        with contextlib.suppress(ServiceError):
            terminate(pid, 5.0, "triton")


def triton_down(
    root: Path = REPO_ROOT,
    data_dir: Path | None = None,
    timeout: float = 20.0,
    *,
    wipe: bool = False,
) -> bool:
    """Stop our tritonserver and its stubs, remove stale shm regions; True if one ran."""
    paths = _paths(Path(root), data_dir)
    stopped = _daemon(paths).stop(timeout, wipe=False)
    _end_stubs(paths["repo"])
    for path in clean_shm():
        say("triton", f"removed stale {path}")
    if wipe:
        say("triton", f"wiping {paths['data']}")
        shutil.rmtree(paths["data"], ignore_errors=True)
    return stopped


def triton_status(root: Path = REPO_ROOT, data_dir: Path | None = None) -> ServiceStatus:
    address = triton_ports()
    if not (Path(root) / TRITON_VENV / "bin" / "python").exists():
        return ServiceStatus("triton", address.grpc, None, False, False, "run `make triton-env`")
    pid, detail = _daemon(_paths(Path(root), data_dir)).found()
    if pid is not None:
        address = _running_address(pid) or address
    answering = ready(address)
    if pid is None and answering:
        detail = "answering, but not from our pid file"
    return ServiceStatus("triton", address.grpc, pid, pid is not None, answering, detail)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triton")
    parser.add_argument("command", choices=["prepare", "up", "down", "status"])
    parser.add_argument("--variant", default="fp32", choices=["int8", "fp32"])
    parser.add_argument("--join", default="pad", choices=["pad", "group", "request"])
    parser.add_argument("--wipe", action="store_true", help="down: delete .data/triton too")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            print(prepare_triton_backends())
        elif args.command == "up":
            triton_up(variant=args.variant, join=args.join)
            print(f"tritonserver listening: {triton_running_address()}")
        elif args.command == "down":
            triton_down(wipe=args.wipe)
        else:
            s = triton_status()
            state = "up" if s.answering else ("starting or unhealthy" if s.running else "down")
            print(f"triton {state:<22} {s.address:<28} pid {s.pid} {s.detail}")
    except ServiceError as exc:
        say("triton", f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
