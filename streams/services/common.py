"""What every local service shares: addresses, ports, directories, errors and status."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# This file is streams/services/common.py: three levels below the repository root.
REPO_ROOT: Path = Path(__file__).resolve().parent.parent.parent

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

# The lock file inside each data directory.
LOCK = ".lock"


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


def say(service: str, message: str) -> None:
    print(f"[{service}] {message}", flush=True)


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
