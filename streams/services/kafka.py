"""The local single-node Kafka broker (KRaft, combined broker + controller).

Runs ``kafka.Kafka`` from the Maven jars (see ``jars``) with the machine's ``java``; state,
pid file and logs live under ``.data/kafka``.
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import time
import uuid
from pathlib import Path

from streams.services.common import (
    HOST,
    KAFKA_LOG4J_CONFIG,
    KAFKA_PORT_ENV,
    KAFKA_VERSION,
    REPO_ROOT,
    ServiceError,
    ServiceStatus,
    kafka_bootstrap,
    kafka_controller_port,
    kafka_data_dir,
    kafka_port,
    say,
)
from streams.services.jars import ensure_kafka_jars, java
from streams.services.kafka_ready import kafka_metadata_ok, wait_kafka_ready
from streams.services.process import Daemon, find_processes, port_open, write_atomic

# Files inside the data directory.
_KAFKA_PID = "kafka.pid"
_KAFKA_PROPERTIES = "server.properties"
_KAFKA_CLUSTER_ID = "cluster.id"
_KAFKA_LOG_DIRS = "kraft-logs"
_KAFKA_APP_LOGS = "logs"
_KAFKA_STDOUT = "kafka.out"

_MARKER = "kafka.Kafka"


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
    }


def _kafka_daemon(paths: dict[str, Path]) -> Daemon:
    return Daemon(
        service="kafka",
        noun="broker",
        marker=_MARKER,
        data=paths["data"],
        pid_file=paths["pid"],
        orphans=lambda: find_processes(_MARKER, str(paths["properties"])),
    )


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
    lines = ["# Written by streams/services/kafka.py on every start; edits are overwritten."]
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
        java(),
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
        write_atomic(cluster_file, cluster_id + "\n")
    say("kafka", f"formatting storage in {paths['log_dirs']} (cluster id {cluster_id})")
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
    daemon = _kafka_daemon(paths)
    started = time.monotonic()
    deadline = started + timeout
    paths["data"].mkdir(parents=True, exist_ok=True)

    with daemon.locked():
        pid = daemon.adopt()
        if pid is not None:
            running_port = _listener_port(paths["properties"])
            if running_port is not None and running_port != port:
                raise ServiceError(
                    f"a local broker (pid {pid}) already runs on {HOST}:{running_port}, "
                    f"not {port}: run `python -m streams.services down --only kafka` first"
                )
            if kafka_metadata_ok(bootstrap, timeout=3.0):
                return bootstrap
            say("kafka", f"broker pid {pid} is running but not answering yet; waiting")
            phases = wait_kafka_ready(bootstrap, port, pid, paths, deadline, verify_transactions)
            say("kafka", f"ready on {bootstrap} (pid {pid}; {phases})")
            return bootstrap

        for p in (port, controller_port):
            if port_open(p, timeout=0.3):
                raise ServiceError(
                    f"port {HOST}:{p} is in use by a process that is not our broker "
                    f"(no live pid in {paths['pid']}); stop it or set {KAFKA_PORT_ENV}"
                )

        lib = ensure_kafka_jars(root)
        paths["logs"].mkdir(parents=True, exist_ok=True)
        paths["log_dirs"].mkdir(parents=True, exist_ok=True)
        write_atomic(
            paths["properties"], kafka_server_properties(port, controller_port, paths["log_dirs"])
        )
        _format_storage(lib, paths, root)

        cmd = [*_java_base(lib, paths, root), _MARKER, str(paths["properties"])]
        say("kafka", f"starting Kafka {KAFKA_VERSION} on {bootstrap} (data {paths['data']})")
        child = daemon.start(cmd, paths["stdout"])
        try:
            phases = wait_kafka_ready(bootstrap, port, child, paths, deadline, verify_transactions)
        except BaseException:
            daemon.abandon(child, 10.0)
            raise
        elapsed = time.monotonic() - started
        say("kafka", f"ready on {bootstrap} (pid {child}) in {elapsed:.1f}s ({phases})")
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
    daemon = _kafka_daemon(_kafka_paths(Path(root), data_dir))
    return daemon.stop(timeout, wipe=wipe, report_time=True)


def kafka_status(root: Path = REPO_ROOT, data_dir: Path | None = None) -> ServiceStatus:
    paths = _kafka_paths(Path(root), data_dir)
    pid, detail = _kafka_daemon(paths).found()
    port = _listener_port(paths["properties"]) or kafka_port()
    bootstrap = kafka_bootstrap(port)
    answering = port_open(port) and kafka_metadata_ok(bootstrap, timeout=3.0)
    if pid is None and answering:
        detail = "answering, but not from our pid file (another checkout's broker?)"
    return ServiceStatus("kafka", bootstrap, pid, pid is not None, answering, detail)
