"""The projection runner: read topics from the positions a store keeps, apply, repeat.

A projection is an idempotent fold of events into a store (Redis, ClickHouse, a CRM).
It keeps its own position (next offset per topic partition) in the same write as its
data, so the runner never relies on Kafka consumer-group commits: after a crash or a
redelivery it resumes from the store's position, and applying an event twice changes
nothing. ``rebuild`` is the same loop from offset 0 into a fresh store.

While the store is down, ``apply`` raises; the runner backs off and retries the same
batch (nothing is skipped, nothing is lost) and reports it in metrics. If the store
comes back having lost writes, ``apply`` raises :class:`StoreRewound` and the runner
seeks back to the store's positions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client import Counter

from events.base import Event
from events.codec import AvroCodec, DecodeError
from streams.bootstrap import build_codec
from streams.kafka import record_of
from streams.settings import Settings
from streams.steps import Record

log = logging.getLogger("casestream.projections")

APPLIED = Counter(
    "casestream_projection_events_total", "Events applied by a projection.", ["projection"]
)
SKIPPED = Counter(
    "casestream_projection_undecodable_total",
    "Records a projection could not decode (the worker dead-letters them).",
    ["projection"],
)
RETRIES = Counter(
    "casestream_projection_retries_total", "Failed apply attempts (store down).", ["projection"]
)

Position = dict[tuple[str, int], int]


@dataclass(frozen=True, slots=True)
class Applied:
    """One decoded record handed to a projection."""

    record: Record
    event: Event


class Projection(Protocol):
    """An idempotent fold of events into a store that keeps its own position."""

    name: str

    def topics(self) -> Sequence[str]:
        """Full names of the topics this projection reads."""
        ...

    def positions(self) -> Position:
        """Next offset to read per (topic, partition); missing = from the beginning."""
        ...

    def apply(self, batch: Sequence[Applied]) -> None:
        """Apply a batch and store the new positions with the data (atomically per
        entity); applying a record at or below the stored position changes nothing."""
        ...


class StoreRewound(RuntimeError):
    """The store's position for a partition is behind what this projection stored there:
    the store lost writes (e.g. a Redis restarted without persistence). Nothing was
    applied; the runner re-reads ``positions()`` and replays from there."""


@dataclass
class RunStats:
    applied: int = 0
    undecodable: int = 0
    retries: int = 0
    restarts: int = 0


def run_projection(
    settings: Settings,
    projection: Projection,
    *,
    stop: threading.Event | None = None,
    until_caught_up: bool = False,
    batch_size: int = 500,
    max_backoff_s: float = 5.0,
    on_batch: Callable[[RunStats], None] | None = None,
    codec: AvroCodec | None = None,
) -> RunStats:
    """Feed ``projection`` from Kafka until ``stop`` is set (or, with ``until_caught_up``,
    until every partition is at its end)."""
    stop = stop or threading.Event()
    codec = codec or build_codec(settings)
    stats = RunStats()
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.app_id}-projection-{projection.name}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        assignment = _assign(consumer, projection)
        at_end: set[tuple[str, int]] = set()
        while not stop.is_set():
            messages = consumer.consume(batch_size, timeout=0.2)
            batch: list[Applied] = []
            for msg in messages:
                tp = (msg.topic(), msg.partition())
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(tp)
                        continue
                    raise RuntimeError(f"{projection.name}: {msg.error()}")
                at_end.discard(tp)
                record = record_of(msg)
                try:
                    batch.append(Applied(record, codec.decode(record.value)))
                except DecodeError:
                    stats.undecodable += 1
                    SKIPPED.labels(projection.name).inc()
            if batch:
                try:
                    _apply_with_retry(projection, batch, stats, stop, max_backoff_s)
                except StoreRewound as exc:
                    if stop.is_set():
                        raise
                    stats.restarts += 1
                    log.warning(
                        "%s: %s; replaying from the store's positions", projection.name, exc
                    )
                    assignment = _assign(consumer, projection)
                    at_end.clear()
                    continue
                if on_batch is not None:
                    on_batch(stats)
            if until_caught_up and not messages and len(at_end) >= len(assignment):
                break
    finally:
        consumer.close()
    return stats


def _assign(consumer: Consumer, projection: Projection) -> list[TopicPartition]:
    positions = projection.positions()
    assignment: list[TopicPartition] = []
    for topic in projection.topics():
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            raise RuntimeError(f"topic {topic}: {meta.error}")
        for partition in sorted(meta.partitions):
            assignment.append(
                TopicPartition(topic, partition, positions.get((topic, partition), 0))
            )
    consumer.assign(assignment)
    return assignment


def _apply_with_retry(
    projection: Projection,
    batch: list[Applied],
    stats: RunStats,
    stop: threading.Event,
    max_backoff_s: float,
) -> None:
    backoff = 0.05
    while True:
        try:
            projection.apply(batch)
        except StoreRewound:
            raise
        except Exception as exc:  # the store is down or refused: wait, retry the same batch
            stats.retries += 1
            RETRIES.labels(projection.name).inc()
            log.warning("%s: apply failed (%r); retrying in %.2fs", projection.name, exc, backoff)
            if stop.wait(backoff):
                raise
            backoff = min(max_backoff_s, backoff * 2)
            continue
        stats.applied += len(batch)
        APPLIED.labels(projection.name).inc(len(batch))
        return
