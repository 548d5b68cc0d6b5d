"""Faust's aiokafka transport with two fixes to where a partition resumes after a
rebalance's recovery, both seen as records a restarted worker never processed.

1. A partition without a committed offset is read again from its beginning, not from
   where the fetcher happened to be. Faust starts fetching the input topics while it
   restores tables; when the restore completes it seeks each partition to its committed
   offset (``Consumer.perform_seek``). aiokafka's ``seek_to_committed`` seeks only where
   the committed offset is above 0, so a partition with nothing committed kept its fetch
   position and records fetched before were never delivered again (faust-streaming/faust#596
   describes the race). Seen: a worker restarted after a crash took the first action
   request of a partition and never the second (``tests/integration/test_act_restart.py``).
   Such partitions are sought to the beginning, where ``auto_offset_reset = earliest``
   starts them anyway; what was processed before comes again, and every stage is
   idempotent on redelivery.

2. A batch fetched before a seek is not delivered after it. Faust's drain loop goes on
   delivering the batch it was iterating when ``perform_seek`` moved the partitions back
   to their committed offsets: the first such record jumps ahead of the read offset the
   seek set, Faust counts the jump as a gap of acknowledged offsets, and then drops the
   records the fetcher brings again from the committed offset as "behind" the read
   offset. The records in between were never processed, yet their offsets were committed.
   Seen in ``tests/integration/test_a_exactly_once.py`` (kill -9, restart): the worker
   log showed "gap: inbound[2] offset 456, read offset 241" right after the seek, then
   "behind at offset 241, read offset 539"; about one run in twelve lost decisions. Here
   a fetch and a seek never overlap (one lock), each seek counts per partition, and a
   record whose partition was sought after its batch was fetched is dropped: the fetcher
   brings it again from the new position.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from streams import metrics

log = logging.getLogger(__name__)


class Consumer(faust_aiokafka.Consumer):  # type: ignore[misc]  # Faust is untyped here
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: held by a fetch and by a seek: a batch is fetched wholly before or after a seek
        self._fetch_or_seek = asyncio.Lock()
        #: seeks per partition, and their counts when the batch being delivered was fetched
        self._seeks: Counter[Any] = Counter()
        self._batch_seeks: dict[Any, int] = {}
        #: records dropped because their partition was sought after they were fetched
        self.stale_dropped = 0

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        async with self._fetch_or_seek:
            self._batch_seeks = dict(self._seeks)
            return await super()._getmany(active_partitions, timeout)

    async def perform_seek(self) -> None:
        async with self._fetch_or_seek:
            for tp in self.assignment():
                self._seeks[tp] += 1
            await super().perform_seek()
        log.info(
            "consumer sought to committed offsets: %s",
            {f"{tp.topic}[{tp.partition}]": o for tp, o in sorted(self._read_offset.items())},
        )

    async def seek(self, partition: Any, offset: int) -> None:
        async with self._fetch_or_seek:
            self._seeks[partition] += 1
            await super().seek(partition, offset)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """Faust's fetch without the records of partitions sought since it was fetched.

        A record of a stream topic that Faust's drain loop would still not deliver in
        order (an offset jump, which it counts as acknowledged, or one below the read
        offset, which it drops) is logged and counted: those topics have no transaction
        markers and are not compacted, so either means the fetch and the read offsets
        disagree. Table changelogs are compacted (their offsets jump by design)."""
        stale: Counter[str] = Counter()
        changelogs = self.app.tables.changelog_topics
        async for tp, message in super().getmany(timeout):
            if self._seeks[tp] != self._batch_seeks.get(tp, 0):
                self.stale_dropped += 1
                stale[f"{tp.topic}[{tp.partition}]"] += 1
                metrics.CONSUMER_SKIPS.labels(tp.topic, "stale").inc()
                continue
            read = self._read_offset[tp]
            if read is not None and tp.topic not in changelogs:
                kind = "behind" if message.offset < read else None
                if message.offset > read + 1 and read:
                    kind = "gap"
                if kind is not None:
                    metrics.CONSUMER_SKIPS.labels(tp.topic, kind).inc()
                    log.warning(
                        "consumer %s: %s %s[%d] offset %d, read offset %d",
                        kind,
                        "skips to" if kind == "gap" else "is behind at",
                        tp.topic,
                        tp.partition,
                        message.offset,
                        read,
                    )
            yield tp, message
        if stale:
            log.info("consumer dropped records fetched before a seek: %s", dict(stale))

    async def seek_to_committed(self) -> Mapping[Any, int]:
        committed: Mapping[Any, int] = await super().seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        unset = [
            tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs
        ]
        if unset:
            await self._thread.seek_to_beginning(*unset)
        return committed


class Transport(faust_aiokafka.Transport):  # type: ignore[misc]
    Consumer = Consumer
