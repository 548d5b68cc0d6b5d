"""The contract between the projection runner and a projection: what the runner hands
over (:class:`Applied` records, in batches), what a projection gives (:class:`Projection`,
optionally the :class:`BatchWriter` fast path) and what a run reports (:class:`RunStats`).
No Kafka here: a projection depends on this module only (see ``runner.py`` for the loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from events.base import Event
from streams.steps import Record

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
