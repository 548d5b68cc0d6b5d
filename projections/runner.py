"""The projection runner: read topics from the positions a store keeps, apply, repeat.

A projection is an idempotent fold of events into a store (Redis, ClickHouse, a CRM).
It keeps its own position (next offset per topic partition) in the same write as its
data, so the runner never relies on Kafka consumer-group commits: after a crash or a
redelivery it resumes from the store's position, and applying an event twice changes
nothing. ``rebuild`` is the same loop from offset 0 into a fresh store.

Batches are size- and time-bounded: one is cut after ``batch_size`` records or
``batch_ms`` after its first record, whichever comes first. Each batch is *prepared*
(decoded; pure CPU) on the reading thread and *written* by one writer thread, in order,
so preparing the next batch overlaps writing this one. At most ``max_in_flight``
prepared batches wait for the writer: when the store is slow or down, the reader stops
consuming (backpressure) instead of buffering without bound.

While the store is down, the write raises; the writer backs off and retries the same
batch (nothing is skipped, nothing is lost) and reports it in metrics. If the store
comes back having lost writes, the write raises :class:`StoreRewound`: the batches in
flight are dropped and the reader seeks back to the store's positions.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client import Counter

from events.codec import AvroCodec, DecodeError
from projections.contract import (
    Applied,
    BatchWriter,
    Position,
    Prepared,
    Projection,
    RunStats,
    StoreRewound,
)
from projections.writer import Decoded, Stop, Writer
from streams.bootstrap import build_codec
from streams.kafka import record_of
from streams.settings import Settings
from streams.steps import Record

__all__ = [  # the contract, importable from here too
    "Applied",
    "BatchWriter",
    "Position",
    "Prepared",
    "Projection",
    "RunStats",
    "StoreRewound",
    "run_projection",
]

log = logging.getLogger("casestream.projections")

SKIPPED = Counter(
    "casestream_projection_undecodable_total",
    "Records a projection could not decode (the worker dead-letters them).",
    ["projection"],
)


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Decoding makes many short-lived acyclic objects; the cyclic collector scanning them
    # halved the decode rate. It runs again after the batch (cycles are still collected).
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def run_projection(
    settings: Settings,
    projection: Projection,
    *,
    stop: threading.Event | None = None,
    until_caught_up: bool = False,
    batch_size: int = 20_000,
    batch_ms: float = 200.0,
    max_in_flight: int = 2,
    max_backoff_s: float = 5.0,
    on_batch: Callable[[RunStats], None] | None = None,
    codec: AvroCodec | None = None,
    stats: RunStats | None = None,
) -> RunStats:
    """Feed ``projection`` from Kafka until ``stop`` is set (or, with ``until_caught_up``,
    until every partition is at its end and every batch is written). ``stats``, if
    given, is updated as the run goes (to watch it from another thread)."""
    stop = stop or threading.Event()
    stats = stats if stats is not None else RunStats()
    batch_size = min(batch_size, int(getattr(projection, "max_batch", batch_size)))
    fast = isinstance(projection, BatchWriter)
    codec = None if fast else (codec or build_codec(settings))
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.app_id}-projection-{projection.name}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            # Bounded prefetch: with the writer blocked, at most this much waits here.
            "queued.max.messages.kbytes": 65536,
        }
    )
    writer = Writer(projection, stats, stop, max_in_flight, max_backoff_s, on_batch)

    def prepare(records: list[Record]) -> Prepared:
        if fast:
            prepared: Prepared = projection.prepare(records)  # type: ignore[attr-defined]
            return prepared
        decoded = Decoded()
        assert codec is not None
        for record in records:
            try:
                decoded.batch.append(Applied(record, codec.decode(record.value)))
            except DecodeError:
                decoded.undecodable += 1
        return decoded

    try:
        assignment = _assign(consumer, projection)
        at_end: set[tuple[str, int]] = set()
        while not stop.is_set():
            if writer.rewound.is_set():
                writer.drain()
                stats.restarts += 1
                assignment = _assign(consumer, projection)
                at_end.clear()
                writer.rewound.clear()
                continue
            records = _collect(consumer, at_end, batch_size, batch_ms / 1000, projection.name)
            if records:
                stats.read += len(records)
                with _gc_paused():
                    prepared = prepare(records)
                if prepared.undecodable:
                    stats.undecodable += prepared.undecodable
                    SKIPPED.labels(projection.name).inc(prepared.undecodable)
                writer.put(prepared)
            elif until_caught_up and len(at_end) >= len(assignment):
                writer.join()
                if not writer.rewound.is_set():
                    _idle(projection)
                    break
            else:
                _idle(projection)
        writer.join()
    except Stop:
        pass
    finally:
        writer.close()
        consumer.close()
    if writer.error is not None:
        raise writer.error
    return stats


def _idle(projection: Projection) -> None:
    """A projection may do upkeep when there is nothing to read (``idle()``). Upkeep
    is optional work (no record depends on it): a failure is logged and tried again
    at the next idle moment."""
    idle: Callable[[], None] | None = getattr(projection, "idle", None)
    if idle is not None:
        try:
            idle()
        except Exception as exc:
            log.warning("%s: upkeep failed (%r); will try again", projection.name, exc)


def _collect(
    consumer: Consumer, at_end: set[tuple[str, int]], size: int, within_s: float, name: str
) -> list[Record]:
    """Up to ``size`` records, waiting at most ``within_s`` after the first one."""
    records: list[Record] = []
    deadline = 0.0
    while len(records) < size:
        wait = 0.2 if not records else deadline - time.monotonic()
        if wait <= 0:
            break
        messages = consumer.consume(min(size - len(records), 10_000), timeout=wait)
        if not messages:
            break
        if not records:
            deadline = time.monotonic() + within_s
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add((msg.topic(), msg.partition()))
                    continue
                raise RuntimeError(f"{name}: {err}")
            at_end.discard((msg.topic(), msg.partition()))
            records.append(record_of(msg))
        if at_end and not records:
            break
    return records


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
