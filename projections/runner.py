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
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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
    """An idempotent fold of events into a store that keeps its own position.

    A projection may set ``concurrent_write = True`` when its writes may run on another
    thread than ``positions()`` (the runner then writes on its own thread while reading
    and decoding the next batch); without it, the runner writes inline. ``max_batch``
    caps the records of one write (e.g. to bound how long one atomic write blocks the
    store). ``idle()``, if present, is called when there is nothing to read."""

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


class Prepared(Protocol):
    """A batch made ready for a store write: how many records it applies and how many
    could not be decoded (skipped; the worker dead-letters them)."""

    @property
    def applied(self) -> int: ...

    @property
    def undecodable(self) -> int: ...


@runtime_checkable
class BatchWriter(Protocol):
    """Optional fast path of a projection: ``prepare`` decodes raw records its own way
    (pure CPU, no I/O), ``write`` stores the result (the store write; retried while it
    raises). Without it the runner decodes events and calls ``apply``."""

    def prepare(self, records: Sequence[Record]) -> Any: ...

    def write(self, prepared: Any) -> None: ...


@dataclass
class _Decoded:
    batch: list[Applied] = field(default_factory=list)
    undecodable: int = 0

    @property
    def applied(self) -> int:
        return len(self.batch)


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
    batches: int = 0
    read: int = 0
    max_in_flight_seen: int = 0


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


class _Stop(Exception):
    pass


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
    writer = _Writer(projection, stats, stop, max_in_flight, max_backoff_s, on_batch)

    def prepare(records: list[Record]) -> Prepared:
        if fast:
            prepared: Prepared = projection.prepare(records)  # type: ignore[attr-defined]
            return prepared
        decoded = _Decoded()
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
    except _Stop:
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


class _Writer:
    """Writes prepared batches in order, retrying while the store is down. Threaded (for
    a projection whose ``concurrent_write`` is true: its store client may be used from
    another thread than the reader's): one thread behind a bounded queue, which is the
    backpressure. Otherwise inline: ``put`` writes before it returns."""

    def __init__(
        self,
        projection: Projection,
        stats: RunStats,
        stop: threading.Event,
        max_in_flight: int,
        max_backoff_s: float,
        on_batch: Callable[[RunStats], None] | None,
    ) -> None:
        self.projection = projection
        self.stats = stats
        self.stop = stop
        self.max_backoff_s = max_backoff_s
        self.on_batch = on_batch
        self.queue: queue.Queue[Prepared | None] = queue.Queue(maxsize=max(1, max_in_flight))
        self.rewound = threading.Event()
        self.error: BaseException | None = None
        self.threaded = bool(getattr(projection, "concurrent_write", False))
        self._thread = threading.Thread(
            target=self._loop, name=f"projection-{projection.name}-writer", daemon=True
        )
        if self.threaded:
            self._thread.start()

    def put(self, prepared: Prepared) -> None:
        """Hand a batch to the writer; blocks while ``max_in_flight`` batches wait."""
        if not self.threaded:
            self._handle(prepared)
            self._check()
            return
        while True:
            self._check()
            try:
                self.queue.put(prepared, timeout=0.1)
            except queue.Full:
                continue
            self.stats.max_in_flight_seen = max(self.stats.max_in_flight_seen, self.queue.qsize())
            return

    def join(self) -> None:
        """Wait until every batch handed over is written (or dropped after a rewind)."""
        while self.queue.unfinished_tasks:
            self._check()
            time.sleep(0.005)
        self._check()

    def drain(self) -> None:
        self.join()

    def close(self) -> None:
        if not self.threaded:
            return
        while True:  # unblock the thread: it stops at the sentinel or on ``stop``
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
                self.stop.set()
        self._thread.join(timeout=30)

    def _check(self) -> None:
        if self.error is not None:
            raise _Stop
        if self.threaded and self.stop.is_set() and not self._thread.is_alive():
            raise _Stop

    def _loop(self) -> None:
        while True:
            prepared = self.queue.get()
            try:
                if prepared is None:
                    return
                self._handle(prepared)
            finally:
                self.queue.task_done()

    def _handle(self, prepared: Prepared) -> None:
        if self.rewound.is_set() or self.error is not None:
            return  # dropped: the reader replays from the store's positions
        try:
            self._write(prepared)
        except StoreRewound as exc:
            log.warning("%s: %s; replaying from the store's positions", self.projection.name, exc)
            self.rewound.set()
        except BaseException as exc:  # stopped while failing: the caller re-raises
            self.error = exc

    def _write(self, prepared: Prepared) -> None:
        backoff = 0.05
        name = self.projection.name
        while True:
            try:
                if isinstance(prepared, _Decoded):
                    self.projection.apply(prepared.batch)
                else:
                    self.projection.write(prepared)  # type: ignore[attr-defined]
            except StoreRewound:
                raise
            except Exception as exc:  # the store is down or refused: wait, retry the batch
                self.stats.retries += 1
                RETRIES.labels(name).inc()
                log.warning("%s: write failed (%r); retrying in %.2fs", name, exc, backoff)
                if self.stop.wait(backoff):
                    raise
                backoff = min(self.max_backoff_s, backoff * 2)
                continue
            self.stats.applied += prepared.applied
            self.stats.batches += 1
            APPLIED.labels(name).inc(prepared.applied)
            if self.on_batch is not None:
                self.on_batch(self.stats)
            return


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
