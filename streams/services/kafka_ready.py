"""Probes that tell when a starting Kafka broker is ready for the project's clients.

``confluent_kafka`` is imported inside the probes only, so importing this module is cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.services.common import ServiceError
from streams.services.process import alive, port_open, tail

_READINESS_TXN_ID = "casestream-local-services-readiness"
_READINESS_GROUP = "casestream-local-services-readiness"


def _kafka_failure(paths: dict[str, Path], headline: str) -> ServiceError:
    parts = [
        headline,
        f"--- last 40 lines of {paths['server_log']} ---",
        tail(paths["server_log"]),
    ]
    stdout_tail = tail(paths["stdout"]).strip()
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


def kafka_metadata_ok(bootstrap: str, timeout: float) -> bool:
    """True when the broker answers a metadata request listing itself."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_client_config(bootstrap))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:
        return False
    brokers = getattr(metadata, "brokers", None) or {}
    return bool(brokers)


def _kafka_transactions_ok(
    bootstrap: str, deadline: float, still_alive: Callable[[], bool]
) -> None:
    """Init and commit with a transactional producer (this creates ``__transaction_state`` on
    a new broker). Raises ``ServiceError`` on failure, timeout, or when ``still_alive()`` is
    false."""
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
                if not retriable or not still_alive() or time.monotonic() >= deadline:
                    raise ServiceError(f"init_transactions failed: {exc}") from exc
                time.sleep(0.2)
        producer.begin_transaction()
        producer.commit_transaction(max(1.0, deadline - time.monotonic()))
    finally:
        producer.close()


def _kafka_group_coordinator_ok(
    bootstrap: str, deadline: float, still_alive: Callable[[], bool]
) -> None:
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
                if not still_alive() or time.monotonic() >= deadline:
                    raise ServiceError(f"group coordinator not available: {exc}") from exc
                time.sleep(0.2)
    finally:
        consumer.close()


def wait_kafka_ready(
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
        if not alive(pid):
            raise _kafka_failure(paths, f"Kafka broker (pid {pid}) exited during start-up")
        if time.monotonic() >= deadline:
            raise _kafka_failure(paths, f"Kafka broker on {bootstrap}: {what} (timed out)")

    while not port_open(port, timeout=0.5):
        check(f"port {port} not open")
        time.sleep(0.1)
    phase("port")
    while not kafka_metadata_ok(bootstrap, timeout=2.0):
        check("no metadata answer")
        time.sleep(0.2)
    phase("metadata")
    if verify_transactions:
        for name, probe in (
            ("transactions", _kafka_transactions_ok),
            ("group coordinator", _kafka_group_coordinator_ok),
        ):
            try:
                probe(bootstrap, deadline, lambda: alive(pid))
            except ServiceError as exc:
                check(str(exc))
                raise _kafka_failure(paths, f"Kafka broker on {bootstrap}: {exc}") from exc
            phase(name)
    return ", ".join(phases)
