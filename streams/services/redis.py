"""The local Redis server: Debian's ``redis-server`` (``make redis-install``), no persistence,
state under ``.data/redis``."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import time
from pathlib import Path

from streams.services.common import (
    HOST,
    REDIS_PORT_ENV,
    REPO_ROOT,
    ServiceError,
    ServiceStatus,
    redis_data_dir,
    redis_port,
    redis_url,
    say,
)
from streams.services.process import Daemon, alive, cmdline, find_processes, port_open, tail

# Files inside the data directory.
_REDIS_PID = "redis.pid"
_REDIS_LOG = "redis.log"

_MARKER = "redis-server"


def redis_server() -> str:
    """The path of ``redis-server``; ``ServiceError`` (run ``make redis-install``) if none."""
    found = shutil.which("redis-server")
    if not found:
        raise ServiceError(
            "redis-server not found on PATH: run `make redis-install` "
            "(apt-get update && apt-get install -y redis-server)"
        )
    return found


def redis_available() -> bool:
    """True when Debian's ``redis-server`` is installed."""
    return shutil.which("redis-server") is not None


def redis_ping(port: int, timeout: float = 1.0) -> bool:
    """Send ``PING`` in RESP over a raw socket; True on ``+PONG``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith(b"+PONG")


def _redis_paths(root: Path, data_dir: Path | None) -> dict[str, Path]:
    data = Path(data_dir) if data_dir is not None else redis_data_dir(root)
    data = data.resolve()
    return {
        "data": data,
        "pid": data / _REDIS_PID,
        "log": data / _REDIS_LOG,
    }


def _redis_pid_port(pid: int) -> int | None:
    """The port of a running redis-server, from its process title ``redis-server HOST:PORT``."""
    match = re.search(r"redis-server \S*:(\d+)", cmdline(pid))
    return int(match.group(1)) if match else None


def _redis_orphans(data: Path) -> list[int]:
    """Live redis-servers working in ``data`` (redis changes its title but chdirs to --dir)."""
    found = []
    for pid in find_processes(_MARKER):
        with contextlib.suppress(OSError):
            if Path(os.readlink(f"/proc/{pid}/cwd")) == data:
                found.append(pid)
    return found


def _redis_daemon(paths: dict[str, Path]) -> Daemon:
    return Daemon(
        service="redis",
        noun="redis-server",
        marker=_MARKER,
        data=paths["data"],
        pid_file=paths["pid"],
        orphans=lambda: _redis_orphans(paths["data"]),
    )


def redis_up(
    root: Path = REPO_ROOT,
    port: int | None = None,
    data_dir: Path | None = None,
    timeout: float = 20.0,
) -> str:
    """Start (or reuse) a local ``redis-server`` without persistence; return its URL.

    ``port`` defaults to ``$CASESTREAM_LOCAL_REDIS_PORT`` or 16379. Raises ``ServiceError``
    (saying to run ``make redis-install``) when redis-server is not installed.
    """
    root = Path(root)
    port = redis_port() if port is None else port
    url = redis_url(port)
    paths = _redis_paths(root, data_dir)
    daemon = _redis_daemon(paths)
    exe = redis_server()
    paths["data"].mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + timeout
    with daemon.locked():
        pid = daemon.adopt()
        if pid is not None:
            running_port = _redis_pid_port(pid)
            if running_port is not None and running_port != port:
                raise ServiceError(
                    f"our redis-server (pid {pid}) already runs on {HOST}:{running_port}, "
                    f"not {port}: run `python -m streams.services down --only redis` first"
                )
            while not redis_ping(port):
                if not alive(pid) or time.monotonic() >= deadline:
                    raise ServiceError(
                        f"redis-server pid {pid} from {paths['pid']} does not answer PING on "
                        f"port {port}:\n{tail(paths['log'])}"
                    )
                time.sleep(0.1)
            return url
        if port_open(port, timeout=0.3):
            raise ServiceError(
                f"port {HOST}:{port} is in use by a process that is not our redis-server; "
                f"stop it or set {REDIS_PORT_ENV}"
            )
        cmd = [
            exe,
            "--bind",
            HOST,
            "--port",
            str(port),
            "--dir",
            str(paths["data"]),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            "",
        ]
        say("redis", f"starting redis-server on {HOST}:{port} (data {paths['data']})")
        child = daemon.start(cmd, paths["log"])
        daemon.await_ready(
            child,
            lambda: redis_ping(port),
            deadline=deadline,
            not_ready=f"redis-server did not answer PING on port {port} within {timeout}s",
            log_file=paths["log"],
            every=0.05,
        )
        say("redis", f"ready on {url} (pid {child}) in {time.monotonic() - started:.1f}s")
        return url


def redis_down(
    root: Path = REPO_ROOT,
    data_dir: Path | None = None,
    timeout: float = 15.0,
    *,
    wipe: bool = False,
) -> bool:
    """Stop our redis-server (SIGTERM, then SIGKILL); True when one was running."""
    return _redis_daemon(_redis_paths(Path(root), data_dir)).stop(timeout, wipe=wipe)


def redis_status(root: Path = REPO_ROOT, data_dir: Path | None = None) -> ServiceStatus:
    port = redis_port()
    url = redis_url(port)
    if not redis_available():
        return ServiceStatus("redis", url, None, False, False, "redis-server not installed")
    pid, detail = _redis_daemon(_redis_paths(Path(root), data_dir)).found()
    if pid is not None:
        port = _redis_pid_port(pid) or port
        url = redis_url(port)
    answering = redis_ping(port)
    if pid is None and answering:
        detail = "answering, but not from our pid file"
    return ServiceStatus("redis", url, pid, pid is not None, answering, detail)
