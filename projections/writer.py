"""The writer side of the projection runner: prepared batches are written in order,
retried while the store is down, on one thread behind a bounded queue (the
backpressure) or inline (see :class:`Writer`)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from projections.contract import Applied, Prepared, Projection, RunStats, StoreRewound

log = logging.getLogger("casestream.projections")

APPLIED = Counter(
    "casestream_projection_events_total", "Events applied by a projection.", ["projection"]
)
RETRIES = Counter(
    "casestream_projection_retries_total", "Failed apply attempts (store down).", ["projection"]
)


@dataclass
class Decoded:
    """A batch decoded by the runner (for a projection without the fast path)."""

    batch: list[Applied] = field(default_factory=list)
    undecodable: int = 0

    @property
    def applied(self) -> int:
        return len(self.batch)


class Stop(Exception):
    """The writer stopped (an error, or ``stop`` set while it was failing)."""


class Writer:
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
            raise Stop
        if self.threaded and self.stop.is_set() and not self._thread.is_alive():
            raise Stop

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
                if isinstance(prepared, Decoded):
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
