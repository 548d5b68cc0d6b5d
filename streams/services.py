"""Local services for development and tests: a real Kafka broker and a Redis server.

Both run as plain processes on 127.0.0.1, no Docker:

* Kafka: a single-node KRaft broker (combined broker + controller) from the Maven Central
  jars listed in ``ops/kafka/pom.xml`` (fetched once into ``.cache/kafka/lib`` by ``mvn``),
  run with the machine's ``java``. State, pid file and logs live under ``.data/kafka``.
* Redis: Debian's ``redis-server`` (``make redis-install``), no persistence, state under
  ``.data/redis``.

Used by ``make up`` / ``make down`` (``python -m streams.services up|down|status``) and by the
pytest fixtures of the integration tests. Every ``*_up`` function is idempotent: a service that
is already running from our pid file and answering is reused as it is.

Importing this module has no side effects; ``confluent_kafka`` is imported only when a broker
is probed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT: Path = Path(__file__).resolve().parent.parent

HOST = "127.0.0.1"
KAFKA_VERSION = "4.1.1"

DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_REDIS_PORT = 16379
KAFKA_PORT_ENV = "CASESTREAM_LOCAL_KAFKA_PORT"
KAFKA_CONTROLLER_PORT_ENV = "CASESTREAM_LOCAL_KAFKA_CONTROLLER_PORT"
REDIS_PORT_ENV = "CASESTREAM_LOCAL_REDIS_PORT"

# Paths relative to the repository root.
KAFKA_POM = Path("ops/kafka/pom.xml")
KAFKA_LOG4J_CONFIG = Path("ops/kafka/log4j2.yaml")
KAFKA_JARS_DIR = Path(".cache/kafka/lib")
KAFKA_DATA_DIR = Path(".data/kafka")
REDIS_DATA_DIR = Path(".data/redis")

# Files inside the data directories.
_JARS_MARKER = ".complete.json"
_KAFKA_PID = "kafka.pid"
_KAFKA_PROPERTIES = "server.properties"
_KAFKA_CLUSTER_ID = "cluster.id"
_KAFKA_LOG_DIRS = "kraft-logs"
_KAFKA_APP_LOGS = "logs"
_KAFKA_STDOUT = "kafka.out"
_REDIS_PID = "redis.pid"
_REDIS_LOG = "redis.log"
_LOCK = ".lock"

_READINESS_TXN_ID = "casestream-local-services-readiness"
_READINESS_GROUP = "casestream-local-services-readiness"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Jars every broker needs; used to judge whether a jar directory is complete.
_REQUIRED_JAR_PREFIXES = ("kafka_2.13-", "kafka-server-", "kafka-clients-", "log4j-core-")


class ServiceError(RuntimeError):
    """A local service could not be installed, started, probed or stopped."""


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status()`` found for one service."""

    name: str
    address: str
    pid: int | None
    running: bool
    answering: bool
    detail: str = ""


def _say(service: str, message: str) -> None:
    print(f"[{service}] {message}", flush=True)


# --------------------------------------------------------------------------- paths and ports


def kafka_jars_dir(root: Path = REPO_ROOT) -> Path:
    return Path(root) / KAFKA_JARS_DIR


def kafka_data_dir(root: Path = REPO_ROOT) -> Path:
    return Path(root) / KAFKA_DATA_DIR


def redis_data_dir(root: Path = REPO_ROOT) -> Path:
    return Path(root) / REDIS_DATA_DIR


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ServiceError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ServiceError(f"{name}={raw!r} is not a port number")
    return port


def kafka_port() -> int:
    """The broker's client port: ``$CASESTREAM_LOCAL_KAFKA_PORT`` or 19092."""
    return _env_port(KAFKA_PORT_ENV, DEFAULT_KAFKA_PORT)


def kafka_controller_port(broker_port: int | None = None) -> int:
    """``$CASESTREAM_LOCAL_KAFKA_CONTROLLER_PORT``, else the client port + 1 (19093)."""
    base = kafka_port() if broker_port is None else broker_port
    return _env_port(KAFKA_CONTROLLER_PORT_ENV, base + 1)


def redis_port() -> int:
    """Redis's port: ``$CASESTREAM_LOCAL_REDIS_PORT`` or 16379."""
    return _env_port(REDIS_PORT_ENV, DEFAULT_REDIS_PORT)


def kafka_bootstrap(port: int | None = None) -> str:
    return f"{HOST}:{kafka_port() if port is None else port}"


def redis_url(port: int | None = None) -> str:
    return f"redis://{HOST}:{redis_port() if port is None else port}/0"


# --------------------------------------------------------------------------- process helpers


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` so that ``make up`` and a test session do not race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _cmdline(pid: int) -> str:
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


def _alive(pid: int) -> bool:
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


def _live_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and its command line has ``marker``.

    The marker check protects against a recycled pid after a reboot or a stale pid file.
    """
    pid = _read_pid(pid_file)
    if pid is None or not _alive(pid):
        return None
    cmdline = _cmdline(pid)
    if cmdline and marker not in cmdline:
        return None
    return pid


def _find_processes(*needles: str) -> list[int]:
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
        cmdline = _cmdline(pid)
        if cmdline and all(n in cmdline for n in needles) and _alive(pid):
            found.append(pid)
    return found


def _terminate(pid: int, timeout: float, service: str) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL (and wait a little more)."""
    if not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    _say(service, f"pid {pid} still running {timeout:.0f}s after SIGTERM: sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    raise ServiceError(f"{service}: pid {pid} survived SIGKILL")


def _spawn(cmd: Sequence[str], log_file: Path) -> int:
    """Start ``cmd`` detached in its own session; stdout and stderr append to ``log_file``.

    ``posix_spawn`` rather than ``Popen``: the service must outlive this interpreter, and a
    ``Popen`` left running warns ("subprocess N is still running") at exit. ``_alive`` reaps
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


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(data.splitlines()[-lines:])


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


# --------------------------------------------------------------------------- Kafka: jars


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if not found:
        raise ServiceError(
            "java not found on PATH: install a JDK 17 (apt-get install -y openjdk-17-jre-headless)"
        )
    return found


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _jars_complete(lib: Path, digest: str) -> bool:
    try:
        marker = json.loads((lib / _JARS_MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("pom_sha256") != digest:
        return False
    jars = marker.get("jars")
    if not isinstance(jars, list) or not jars:
        return False
    return all(isinstance(name, str) and (lib / name).is_file() for name in jars)


def ensure_kafka_jars(root: Path = REPO_ROOT) -> Path:
    """Make sure ``.cache/kafka/lib`` holds every runtime jar of ``ops/kafka/pom.xml``.

    Runs ``mvn dependency:copy-dependencies`` only when the directory is missing, incomplete or
    was filled from a different pom (a marker file records the pom's hash and the jar list).
    Maven writes into a scratch directory that replaces the old one only on success, so jars
    of two Kafka versions never mix. Returns the jar directory.
    """
    root = Path(root)
    pom = root / KAFKA_POM
    lib = kafka_jars_dir(root)
    if not pom.is_file():
        raise ServiceError(f"{pom} not found")
    digest = _pom_digest(pom)
    if _jars_complete(lib, digest):
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise ServiceError("mvn not found on PATH: install Maven (apt-get install -y maven)")
    with _file_lock(lib.parent / ".install.lock"):
        if _jars_complete(lib, digest):
            return lib
        scratch = lib.parent / f".lib.tmp-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        _say("kafka", f"fetching Kafka jars with Maven into {lib} (missing or out of date) ...")
        started = time.monotonic()
        cmd = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={scratch}",
            "-DincludeScope=runtime",
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ServiceError(f"mvn did not finish within {exc.timeout:.0f}s") from exc
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            output = _ANSI.sub("", result.stdout + "\n" + result.stderr).strip().splitlines()
            tail = "\n".join(output[-40:])
            raise ServiceError(
                f"mvn failed with exit code {result.returncode}: {' '.join(cmd)}\n{tail}"
            )
        jars = sorted(p.name for p in scratch.glob("*.jar"))
        missing = [p for p in _REQUIRED_JAR_PREFIXES if not any(j.startswith(p) for j in jars)]
        if missing:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ServiceError(f"mvn succeeded but no jar starting with {missing} was copied")
        marker = {"pom_sha256": digest, "jars": jars}
        (scratch / _JARS_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        shutil.rmtree(lib, ignore_errors=True)
        scratch.rename(lib)
        elapsed = time.monotonic() - started
        _say("kafka", f"{len(jars)} jars ready in {elapsed:.1f}s")
    return lib


# --------------------------------------------------------------------------- Kafka: broker


def _kafka_paths(root: Path, data_dir: Path | None) -> dict[str, Path]:
    data = Path(data_dir) if data_dir is not None else kafka_data_dir(root)
    data = data.resolve()
    return {
        "data": data,
        "pid": data / _KAFKA_PID,
        "properties": data / _KAFKA_PROPERTIES,
        "cluster_id": data / _KAFKA_CLUSTER_ID,
        "log_dirs": data / _KAFKA_LOG_DIRS,
        "logs": data / _KAFKA_APP_LOGS,
        "server_log": data / _KAFKA_APP_LOGS / "server.log",
        "stdout": data / _KAFKA_APP_LOGS / _KAFKA_STDOUT,
        "lock": data / _LOCK,
    }


def kafka_server_properties(port: int, controller_port: int, log_dirs: Path) -> str:
    """server.properties of the single-node combined (broker + controller) KRaft broker."""
    settings: list[tuple[str, str | int]] = [
        ("process.roles", "broker,controller"),
        ("node.id", 1),
        ("controller.quorum.voters", f"1@{HOST}:{controller_port}"),
        ("listeners", f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}"),
        ("advertised.listeners", f"PLAINTEXT://{HOST}:{port}"),
        ("controller.listener.names", "CONTROLLER"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"),
        ("log.dirs", str(log_dirs)),
        # Topics are created explicitly from the topic registry (a broker default that
        # differs from a table's changelog breaks Faust with PartitionsMismatch).
        ("auto.create.topics.enable", "false"),
        ("num.partitions", 1),
        ("default.replication.factor", 1),
        ("min.insync.replicas", 1),
        ("offsets.topic.replication.factor", 1),
        # 10 instead of 50 partitions for __consumer_offsets and __transaction_state: quicker
        # to create and load on a 2-core machine; plenty for local groups and producers.
        ("offsets.topic.num.partitions", 10),
        ("transaction.state.log.replication.factor", 1),
        ("transaction.state.log.min.isr", 1),
        ("transaction.state.log.num.partitions", 10),
        ("share.coordinator.state.topic.replication.factor", 1),
        ("share.coordinator.state.topic.min.isr", 1),
        ("group.initial.rebalance.delay.ms", 0),
        ("num.network.threads", 3),
        ("num.io.threads", 4),
        ("num.recovery.threads.per.data.dir", 1),
        ("log.retention.hours", 168),
        ("log.segment.bytes", 104857600),
        ("delete.topic.enable", "true"),
    ]
    lines = ["# Written by streams/services.py on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in settings]
    return "\n".join(lines) + "\n"


def _listener_port(properties: Path) -> int | None:
    """The PLAINTEXT port written in an existing server.properties."""
    try:
        text = properties.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("listeners="):
            for listener in line.split("=", 1)[1].split(","):
                if listener.startswith("PLAINTEXT://"):
                    with contextlib.suppress(ValueError):
                        return int(listener.rsplit(":", 1)[1])
    return None


def _new_cluster_id() -> str:
    """A Kafka ``Uuid`` string: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _java_base(lib: Path, paths: dict[str, Path], root: Path) -> list[str]:
    log4j = (Path(root) / KAFKA_LOG4J_CONFIG).resolve()
    cmd = [
        _java(),
        "-Xmx1G",
        "-Xms256M",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        f"-XX:ErrorFile={paths['logs']}/hs_err_pid%p.log",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={paths['logs']}",
    ]
    if log4j.is_file():
        cmd.append(f"-Dlog4j2.configurationFile={log4j}")
    cmd += ["-cp", f"{lib}/*"]
    return cmd


def _format_storage(lib: Path, paths: dict[str, Path], root: Path) -> None:
    """Format the KRaft log dir once; the cluster id is stored beside it."""
    if (paths["log_dirs"] / "meta.properties").is_file():
        return
    cluster_file = paths["cluster_id"]
    cluster_id = cluster_file.read_text().strip() if cluster_file.is_file() else ""
    if not cluster_id:
        cluster_id = _new_cluster_id()
        _write_atomic(cluster_file, cluster_id + "\n")
    _say("kafka", f"formatting storage in {paths['log_dirs']} (cluster id {cluster_id})")
    cmd = [
        *_java_base(lib, paths, root),
        "kafka.tools.StorageTool",
        "format",
        "--ignore-formatted",
        "--cluster-id",
        cluster_id,
        "--config",
        str(paths["properties"]),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        output = (result.stdout + "\n" + result.stderr).strip().splitlines()
        raise ServiceError(
            f"kafka.tools.StorageTool format failed (exit {result.returncode}):\n"
            + "\n".join(output[-40:])
        )


def _kafka_failure(paths: dict[str, Path], headline: str) -> ServiceError:
    parts = [
        headline,
        f"--- last 40 lines of {paths['server_log']} ---",
        _tail(paths["server_log"]),
    ]
    stdout_tail = _tail(paths["stdout"]).strip()
    if stdout_tail and not stdout_tail.startswith("(no "):
        parts += [f"--- last 40 lines of {paths['stdout']} ---", stdout_tail]
    return ServiceError("\n".join(parts))


def _client_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "socket.connection.setup.timeout.ms": 2000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "log.connection.close": False,
        # Errors only: start-up probes otherwise print "Coordinator load in progress" etc.
        "log_level": 3,
    }


def _kafka_metadata_ok(bootstrap: str, timeout: float) -> bool:
    """True when the broker answers a metadata request listing itself."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_client_config(bootstrap))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:
        return False
    brokers = getattr(metadata, "brokers", None) or {}
    return bool(brokers)


def _kafka_transactions_ok(bootstrap: str, deadline: float, alive: Callable[[], bool]) -> None:
    """Init and commit with a transactional producer (this creates ``__transaction_state`` on
    a new broker). Raises ``ServiceError`` on failure, timeout, or when ``alive()`` is false."""
    from confluent_kafka import KafkaException, Producer

    producer = Producer(
        {
            **_client_config(bootstrap),
            "transactional.id": _READINESS_TXN_ID,
            "transaction.timeout.ms": 10000,
        }
    )
    try:
        while True:
            try:
                producer.init_transactions(max(1.0, min(deadline - time.monotonic(), 5.0)))
                break
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = bool(error is not None and error.retriable())
                if not retriable or not alive() or time.monotonic() >= deadline:
                    raise ServiceError(f"init_transactions failed: {exc}") from exc
                time.sleep(0.2)
        producer.begin_transaction()
        producer.commit_transaction(max(1.0, deadline - time.monotonic()))
    finally:
        producer.close()


def _kafka_group_coordinator_ok(bootstrap: str, deadline: float, alive: Callable[[], bool]) -> None:
    """Find a group coordinator (this creates ``__consumer_offsets`` on a new broker).

    A consumer's ``committed()`` does FindCoordinator + OffsetFetch through the consumer-group
    machinery, which retries while the coordinator loads. Do NOT use
    ``AdminClient.list_consumer_group_offsets`` for this: librdkafka (2.16 here, reported since
    2.4, librdkafka#5040) kills the process with SIGSEGV in ``rd_kafka_cgrp_op`` when that call
    meets NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS, which is every cold start.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {**_client_config(bootstrap), "group.id": _READINESS_GROUP, "enable.auto.commit": False}
    )
    try:
        probe = [TopicPartition("__casestream_readiness_probe", 0)]
        while True:
            try:
                consumer.committed(probe, timeout=max(1.0, min(deadline - time.monotonic(), 5.0)))
                return
            except KafkaException as exc:
                if not alive() or time.monotonic() >= deadline:
                    raise ServiceError(f"group coordinator not available: {exc}") from exc
                time.sleep(0.2)
    finally:
        consumer.close()


def _wait_kafka_ready(
    bootstrap: str,
    port: int,
    pid: int,
    paths: dict[str, Path],
    deadline: float,
    verify_transactions: bool,
) -> str:
    """Poll until the broker answers (no fixed sleeps); return the phase timings."""
    phases: list[str] = []
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases.append(f"{name} {now - mark:.1f}s")
        mark = now

    def check(what: str) -> None:
        if not _alive(pid):
            raise _kafka_failure(paths, f"Kafka broker (pid {pid}) exited during start-up")
        if time.monotonic() >= deadline:
            raise _kafka_failure(paths, f"Kafka broker on {bootstrap}: {what} (timed out)")

    while not _port_open(port, timeout=0.5):
        check(f"port {port} not open")
        time.sleep(0.1)
    phase("port")
    while not _kafka_metadata_ok(bootstrap, timeout=2.0):
        check("no metadata answer")
        time.sleep(0.2)
    phase("metadata")
    if verify_transactions:
        for name, probe in (
            ("transactions", _kafka_transactions_ok),
            ("group coordinator", _kafka_group_coordinator_ok),
        ):
            try:
                probe(bootstrap, deadline, lambda: _alive(pid))
            except ServiceError as exc:
                check(str(exc))
                raise _kafka_failure(paths, f"Kafka broker on {bootstrap}: {exc}") from exc
            phase(name)
    return ", ".join(phases)


def kafka_up(
    root: Path = REPO_ROOT,
    port: int | None = None,
    controller_port: int | None = None,
    data_dir: Path | None = None,
    timeout: float = 90.0,
    *,
    verify_transactions: bool = True,
) -> str:
    """Start (or reuse) the local single-node Kafka broker; return its bootstrap address.

    ``port`` defaults to ``$CASESTREAM_LOCAL_KAFKA_PORT`` or 19092, ``controller_port`` to
    ``$CASESTREAM_LOCAL_KAFKA_CONTROLLER_PORT`` or ``port + 1``, ``data_dir`` to
    ``<root>/.data/kafka``. A broker from our pid file that answers is returned at once.
    Otherwise: fetch the jars if needed, write server.properties, format the storage if it
    is new, start ``kafka.Kafka`` detached and wait (at most ``timeout`` seconds) until it
    answers metadata and, with ``verify_transactions``, a transactional producer can init and
    a group coordinator is found. On failure raises ``ServiceError`` with the log tail.
    """
    root = Path(root)
    port = kafka_port() if port is None else port
    controller_port = kafka_controller_port(port) if controller_port is None else controller_port
    if port == controller_port:
        raise ServiceError(f"the Kafka client and controller ports must differ (both {port})")
    bootstrap = kafka_bootstrap(port)
    paths = _kafka_paths(root, data_dir)
    started = time.monotonic()
    deadline = started + timeout
    paths["data"].mkdir(parents=True, exist_ok=True)

    with _file_lock(paths["lock"]):
        pid = _live_pid(paths["pid"], "kafka.Kafka")
        if pid is None:
            orphans = _find_processes("kafka.Kafka", str(paths["properties"]))
            if orphans:
                pid = orphans[0]
                _say("kafka", f"adopting running broker pid {pid} (pid file was missing)")
                _write_atomic(paths["pid"], f"{pid}\n")
        if pid is not None:
            running_port = _listener_port(paths["properties"])
            if running_port is not None and running_port != port:
                raise ServiceError(
                    f"a local broker (pid {pid}) already runs on {HOST}:{running_port}, "
                    f"not {port}: run `python -m streams.services down --only kafka` first"
                )
            if _kafka_metadata_ok(bootstrap, timeout=3.0):
                return bootstrap
            _say("kafka", f"broker pid {pid} is running but not answering yet; waiting")
            phases = _wait_kafka_ready(bootstrap, port, pid, paths, deadline, verify_transactions)
            _say("kafka", f"ready on {bootstrap} (pid {pid}; {phases})")
            return bootstrap

        for p in (port, controller_port):
            if _port_open(p, timeout=0.3):
                raise ServiceError(
                    f"port {HOST}:{p} is in use by a process that is not our broker "
                    f"(no live pid in {paths['pid']}); stop it or set {KAFKA_PORT_ENV}"
                )

        lib = ensure_kafka_jars(root)
        paths["logs"].mkdir(parents=True, exist_ok=True)
        paths["log_dirs"].mkdir(parents=True, exist_ok=True)
        _write_atomic(
            paths["properties"], kafka_server_properties(port, controller_port, paths["log_dirs"])
        )
        _format_storage(lib, paths, root)

        cmd = [*_java_base(lib, paths, root), "kafka.Kafka", str(paths["properties"])]
        _say("kafka", f"starting Kafka {KAFKA_VERSION} on {bootstrap} (data {paths['data']})")
        child = _spawn(cmd, paths["stdout"])
        _write_atomic(paths["pid"], f"{child}\n")
        try:
            phases = _wait_kafka_ready(bootstrap, port, child, paths, deadline, verify_transactions)
        except BaseException:
            with contextlib.suppress(Exception):
                _terminate(child, 10.0, "kafka")
            with contextlib.suppress(OSError):
                paths["pid"].unlink()
            raise
        elapsed = time.monotonic() - started
        _say("kafka", f"ready on {bootstrap} (pid {child}) in {elapsed:.1f}s ({phases})")
        return bootstrap


def kafka_down(
    root: Path = REPO_ROOT,
    data_dir: Path | None = None,
    timeout: float = 30.0,
    *,
    wipe: bool = False,
) -> bool:
    """Stop the local broker: SIGTERM, up to ``timeout`` seconds, then SIGKILL.

    Removes the pid file; with ``wipe`` deletes the whole data directory (topics, offsets,
    logs). Returns True when a running broker was stopped.
    """
    paths = _kafka_paths(Path(root), data_dir)
    if not paths["data"].exists():
        return False
    with _file_lock(paths["lock"]):
        pids: list[int] = []
        pid = _live_pid(paths["pid"], "kafka.Kafka")
        if pid is not None:
            pids.append(pid)
        pids += [
            p for p in _find_processes("kafka.Kafka", str(paths["properties"])) if p not in pids
        ]
        for p in pids:
            _say("kafka", f"stopping broker pid {p}")
            started = time.monotonic()
            _terminate(p, timeout, "kafka")
            _say("kafka", f"stopped in {time.monotonic() - started:.1f}s")
        with contextlib.suppress(OSError):
            paths["pid"].unlink()
    if wipe:
        _say("kafka", f"wiping {paths['data']}")
        shutil.rmtree(paths["data"], ignore_errors=True)
    return bool(pids)


def kafka_status(root: Path = REPO_ROOT, data_dir: Path | None = None) -> ServiceStatus:
    paths = _kafka_paths(Path(root), data_dir)
    pid = _live_pid(paths["pid"], "kafka.Kafka")
    detail = f"data {paths['data']}"
    if pid is None:
        orphans = _find_processes("kafka.Kafka", str(paths["properties"]))
        if orphans:
            pid = orphans[0]
            detail += " (pid file missing)"
    port = _listener_port(paths["properties"]) or kafka_port()
    bootstrap = kafka_bootstrap(port)
    answering = _port_open(port) and _kafka_metadata_ok(bootstrap, timeout=3.0)
    if pid is None and answering:
        detail = "answering, but not from our pid file (another checkout's broker?)"
    return ServiceStatus("kafka", bootstrap, pid, pid is not None, answering, detail)


# --------------------------------------------------------------------------- Redis


def _redis_server() -> str:
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
        "lock": data / _LOCK,
    }


def _redis_pid_port(pid: int) -> int | None:
    """The port of a running redis-server, from its process title ``redis-server HOST:PORT``."""
    match = re.search(r"redis-server \S*:(\d+)", _cmdline(pid))
    return int(match.group(1)) if match else None


def _redis_orphans(data: Path) -> list[int]:
    """Live redis-servers working in ``data`` (redis changes its title but chdirs to --dir)."""
    found = []
    for pid in _find_processes("redis-server"):
        with contextlib.suppress(OSError):
            if Path(os.readlink(f"/proc/{pid}/cwd")) == data:
                found.append(pid)
    return found


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
    exe = _redis_server()
    paths["data"].mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + timeout
    with _file_lock(paths["lock"]):
        pid = _live_pid(paths["pid"], "redis-server")
        if pid is None:
            orphans = _redis_orphans(paths["data"])
            if orphans:
                pid = orphans[0]
                _say("redis", f"adopting running redis-server pid {pid} (pid file was missing)")
                _write_atomic(paths["pid"], f"{pid}\n")
        if pid is not None:
            running_port = _redis_pid_port(pid)
            if running_port is not None and running_port != port:
                raise ServiceError(
                    f"our redis-server (pid {pid}) already runs on {HOST}:{running_port}, "
                    f"not {port}: run `python -m streams.services down --only redis` first"
                )
            while not redis_ping(port):
                if not _alive(pid) or time.monotonic() >= deadline:
                    raise ServiceError(
                        f"redis-server pid {pid} from {paths['pid']} does not answer PING on "
                        f"port {port}:\n{_tail(paths['log'])}"
                    )
                time.sleep(0.1)
            return url
        if _port_open(port, timeout=0.3):
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
        _say("redis", f"starting redis-server on {HOST}:{port} (data {paths['data']})")
        child = _spawn(cmd, paths["log"])
        _write_atomic(paths["pid"], f"{child}\n")
        while not redis_ping(port):
            failure = ""
            if not _alive(child):
                failure = f"redis-server (pid {child}) exited during start-up"
            elif time.monotonic() >= deadline:
                failure = f"redis-server did not answer PING on port {port} within {timeout}s"
            if failure:
                with contextlib.suppress(Exception):
                    _terminate(child, 5.0, "redis")
                with contextlib.suppress(OSError):
                    paths["pid"].unlink()
                raise ServiceError(f"{failure}\n--- {paths['log']} ---\n{_tail(paths['log'])}")
            time.sleep(0.05)
        _say("redis", f"ready on {url} (pid {child}) in {time.monotonic() - started:.1f}s")
        return url


def redis_down(
    root: Path = REPO_ROOT,
    data_dir: Path | None = None,
    timeout: float = 15.0,
    *,
    wipe: bool = False,
) -> bool:
    """Stop our redis-server (SIGTERM, then SIGKILL); True when one was running."""
    paths = _redis_paths(Path(root), data_dir)
    if not paths["data"].exists():
        return False
    stopped = False
    with _file_lock(paths["lock"]):
        pids: list[int] = []
        pid = _live_pid(paths["pid"], "redis-server")
        if pid is not None:
            pids.append(pid)
        pids += [p for p in _redis_orphans(paths["data"]) if p not in pids]
        for p in pids:
            _say("redis", f"stopping redis-server pid {p}")
            _terminate(p, timeout, "redis")
            stopped = True
        with contextlib.suppress(OSError):
            paths["pid"].unlink()
    if wipe:
        _say("redis", f"wiping {paths['data']}")
        shutil.rmtree(paths["data"], ignore_errors=True)
    return stopped


def redis_status(root: Path = REPO_ROOT, data_dir: Path | None = None) -> ServiceStatus:
    port = redis_port()
    url = redis_url(port)
    if not redis_available():
        return ServiceStatus("redis", url, None, False, False, "redis-server not installed")
    paths = _redis_paths(Path(root), data_dir)
    pid = _live_pid(paths["pid"], "redis-server")
    detail = f"data {paths['data']}"
    if pid is None:
        orphans = _redis_orphans(paths["data"])
        if orphans:
            pid = orphans[0]
            detail += " (pid file missing)"
    if pid is not None:
        port = _redis_pid_port(pid) or port
        url = redis_url(port)
    answering = redis_ping(port)
    if pid is None and answering:
        detail = "answering, but not from our pid file"
    return ServiceStatus("redis", url, pid, pid is not None, answering, detail)


# --------------------------------------------------------------------------- both


def status(root: Path = REPO_ROOT) -> list[ServiceStatus]:
    """The state of the local Kafka broker and Redis server (default data dirs and ports)."""
    return [kafka_status(root), redis_status(root)]


def _print_status(entries: Sequence[ServiceStatus]) -> None:
    for entry in entries:
        if entry.answering:
            state = "up"
        elif entry.running:
            state = "starting or unhealthy"
        else:
            state = "down"
        pid = f"pid {entry.pid}" if entry.pid is not None else "no pid"
        print(f"{entry.name:<6} {state:<22} {entry.address:<28} {pid:<12} {entry.detail}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.services",
        description="Start, stop or inspect the local Kafka broker and Redis server.",
    )
    parser.add_argument("command", choices=["up", "down", "status", "jars"])
    parser.add_argument("--only", choices=["kafka", "redis"], help="act on one service only")
    parser.add_argument(
        "--wipe",
        action="store_true",
        help="delete the data directories (down: after stopping; up: before starting)",
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="Kafka start-up timeout (s)")
    args = parser.parse_args(argv)
    want_kafka = args.only in (None, "kafka")
    want_redis = args.only in (None, "redis")

    try:
        if args.command == "jars":
            print(ensure_kafka_jars())
            return 0
        if args.command == "status":
            entries = []
            if want_kafka:
                entries.append(kafka_status())
            if want_redis:
                entries.append(redis_status())
            _print_status(entries)
            healthy = all(
                e.answering or (e.name == "redis" and args.only is None and not redis_available())
                for e in entries
            )
            return 0 if healthy else 1
        if args.command == "down":
            if want_kafka and not kafka_down(wipe=args.wipe):
                _say("kafka", "not running")
            if want_redis and not redis_down(wipe=args.wipe):
                _say("redis", "not running")
            return 0
        # up
        if args.wipe:
            if want_kafka:
                kafka_down(wipe=True)
            if want_redis:
                redis_down(wipe=True)
        if want_kafka:
            bootstrap = kafka_up(timeout=args.timeout)
            _say("kafka", f"up: bootstrap servers {bootstrap}")
        if want_redis:
            if redis_available():
                url = redis_up()
                _say("redis", f"up: {url}")
            elif args.only == "redis":
                _redis_server()  # raises the "run make redis-install" error
            else:
                _say(
                    "redis",
                    "WARNING: redis-server not installed; skipped (run `make redis-install`)",
                )
        return 0
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
