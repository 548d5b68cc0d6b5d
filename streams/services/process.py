"""Process plumbing for the local services: pid files, locks, spawning and stopping.

``Daemon`` holds what the Kafka and Redis modules share: finding our process (from its pid
file, or adopting one whose pid file went missing), starting it detached, and stopping it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.services.common import HOST, LOCK, ServiceError, say


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` so that ``make up`` and a test session do not race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (comm) S ..." -- comm may contain spaces or parentheses, the state follows the last ")".
    fields = stat[stat.rfind(")") + 1 :].split()
    return bool(fields) and fields[0] in ("Z", "X")


def alive(pid: int) -> bool:
    """True while ``pid`` runs. Reaps it if it is our exited child: a dead child that nobody
    waits for stays a zombie, and a zombie still answers ``kill(pid, 0)``."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def live_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and its command line has ``marker``.

    The marker check protects against a recycled pid after a reboot or a stale pid file.
    """
    pid = _read_pid(pid_file)
    if pid is None or not alive(pid):
        return None
    line = cmdline(pid)
    if line and marker not in line:
        return None
    return pid


def find_processes(*needles: str) -> list[int]:
    """Pids of live processes whose command line contains every one of ``needles``."""
    found: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        line = cmdline(pid)
        if line and all(n in line for n in needles) and alive(pid):
            found.append(pid)
    return found


def terminate(pid: int, timeout: float, service: str) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL (and wait a little more)."""
    if not alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    say(service, f"pid {pid} still running {timeout:.0f}s after SIGTERM: sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    raise ServiceError(f"{service}: pid {pid} survived SIGKILL")


def spawn(cmd: Sequence[str], log_file: Path) -> int:
    """Start ``cmd`` detached in its own session; stdout and stderr append to ``log_file``.

    ``posix_spawn`` rather than ``Popen``: the service must outlive this interpreter, and a
    ``Popen`` left running warns ("subprocess N is still running") at exit. ``alive`` reaps
    the child if it dies while we are still here. Python opens files close-on-exec, so the
    child inherits only stdin/stdout/stderr.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return os.posix_spawn(
        cmd[0],
        list(cmd),
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(data.splitlines()[-lines:])


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


@dataclass(frozen=True)
class Daemon:
    """One local service's process: its data directory, pid file and lock."""

    service: str  # the log prefix: "kafka", "redis"
    noun: str  # the process in messages: "broker", "redis-server"
    marker: str  # must appear in the command line of the pid file's process
    data: Path
    pid_file: Path
    orphans: Callable[[], list[int]]  # our live processes, found without the pid file

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.data / LOCK)

    def running(self) -> tuple[int | None, bool]:
        """Our live pid, from the pid file or else the first orphan; True for an orphan."""
        pid = live_pid(self.pid_file, self.marker)
        if pid is not None:
            return pid, False
        orphans = self.orphans()
        return (orphans[0], True) if orphans else (None, False)

    def found(self) -> tuple[int | None, str]:
        """Our live pid (see ``running``) and a status detail naming the data directory."""
        pid, orphan = self.running()
        return pid, f"data {self.data}" + (" (pid file missing)" if orphan else "")

    def adopt(self) -> int | None:
        """Our live pid; an orphan's pid is written to the pid file again."""
        pid, orphan = self.running()
        if orphan:
            say(self.service, f"adopting running {self.noun} pid {pid} (pid file was missing)")
            write_atomic(self.pid_file, f"{pid}\n")
        return pid

    def start(self, cmd: Sequence[str], log_file: Path) -> int:
        """Spawn ``cmd`` (see ``spawn``) and record its pid."""
        child = spawn(cmd, log_file)
        write_atomic(self.pid_file, f"{child}\n")
        return child

    def await_ready(
        self,
        child: int,
        ready: Callable[[], bool],
        *,
        deadline: float,
        not_ready: str,
        log_file: Path,
        every: float = 0.1,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        """Poll ``ready`` until it holds; if ``child`` dies or ``deadline`` (monotonic) passes,
        stop it, run ``on_failure`` and raise ``ServiceError`` with the log's tail."""
        while not ready():
            failure = ""
            if not alive(child):
                failure = f"{self.noun} (pid {child}) exited during start-up"
            elif time.monotonic() >= deadline:
                failure = not_ready
            if failure:
                self.abandon(child, 10.0)
                on_failure()
                raise ServiceError(f"{failure}\n--- {log_file} ---\n{tail(log_file)}")
            time.sleep(every)

    def abandon(self, pid: int, timeout: float) -> None:
        """Stop a process that failed to start, quietly, and forget its pid."""
        with contextlib.suppress(Exception):
            terminate(pid, timeout, self.service)
        with contextlib.suppress(OSError):
            self.pid_file.unlink()

    def stop(self, timeout: float, *, wipe: bool, report_time: bool = False) -> bool:
        """Stop every process of ours (SIGTERM, after ``timeout`` seconds SIGKILL), remove the
        pid file and, with ``wipe``, the data directory. True when one was running."""
        if not self.data.exists():
            return False
        with self.locked():
            pids: list[int] = []
            pid = live_pid(self.pid_file, self.marker)
            if pid is not None:
                pids.append(pid)
            pids += [p for p in self.orphans() if p not in pids]
            for p in pids:
                say(self.service, f"stopping {self.noun} pid {p}")
                started = time.monotonic()
                terminate(p, timeout, self.service)
                if report_time:
                    say(self.service, f"stopped in {time.monotonic() - started:.1f}s")
            with contextlib.suppress(OSError):
                self.pid_file.unlink()
        if wipe:
            say(self.service, f"wiping {self.data}")
            shutil.rmtree(self.data, ignore_errors=True)
        return bool(pids)
