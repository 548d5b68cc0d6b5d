"""``python -m streams.services up|down|status|jars`` (also behind ``casestream up/down/status``
and ``make up``/``make down``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.services.common import REPO_ROOT, ServiceError, ServiceStatus, say
from streams.services.jars import ensure_kafka_jars
from streams.services.kafka import kafka_down, kafka_status, kafka_up
from streams.services.redis import (
    redis_available,
    redis_down,
    redis_server,
    redis_status,
    redis_up,
)
from streams.services.triton import triton_down, triton_status, triton_up


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
    parser.add_argument(
        "--only",
        choices=["kafka", "redis", "triton"],
        help="act on one service only (triton: `up` starts it only when named)",
    )
    parser.add_argument(
        "--wipe",
        action="store_true",
        help="delete the data directories (down: after stopping; up: before starting)",
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="Kafka start-up timeout (s)")
    args = parser.parse_args(argv)
    want_kafka = args.only in (None, "kafka")
    want_redis = args.only in (None, "redis")
    want_triton = args.only == "triton"

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
            if want_triton or (args.only is None and triton_status().pid is not None):
                entries.append(triton_status())
            _print_status(entries)
            healthy = all(
                e.answering or (e.name == "redis" and args.only is None and not redis_available())
                for e in entries
            )
            return 0 if healthy else 1
        if args.command == "down":
            if want_kafka and not kafka_down(wipe=args.wipe):
                say("kafka", "not running")
            if want_redis and not redis_down(wipe=args.wipe):
                say("redis", "not running")
            if (want_triton or args.only is None) and not triton_down() and want_triton:
                say("triton", "not running")
            return 0
        if want_triton:
            say("triton", f"up: gRPC {triton_up(timeout=args.timeout)}")
            return 0
        # up
        if args.wipe:
            if want_kafka:
                kafka_down(wipe=True)
            if want_redis:
                redis_down(wipe=True)
        if want_kafka:
            bootstrap = kafka_up(timeout=args.timeout)
            say("kafka", f"up: bootstrap servers {bootstrap}")
        if want_redis:
            if redis_available():
                url = redis_up()
                say("redis", f"up: {url}")
            elif args.only == "redis":
                redis_server()  # raises the "run make redis-install" error
            else:
                say(
                    "redis",
                    "WARNING: redis-server not installed; skipped (run `make redis-install`)",
                )
        return 0
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
