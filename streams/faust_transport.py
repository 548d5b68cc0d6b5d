"""Faust's aiokafka transport with one fix: a partition without a committed offset is
read again from its beginning after a rebalance's recovery, not from where the fetcher
happened to be.

Faust starts fetching the input topics while it restores tables; when the restore
completes it clears every agent's queue and seeks each partition to its committed
offset (``Consumer.perform_seek``). aiokafka's ``seek_to_committed`` seeks only where
the committed offset is above 0, so a partition with nothing committed yet keeps the
fetch position it had: the records that were in the cleared queues are never delivered
again (faust-streaming/faust#596 describes the race). Seen here: a worker restarted
after a crash took the first action request of a partition, lost the second from its
queue, and never saw it again (``tests/integration/test_act_restart.py``). For such
partitions this consumer seeks to the beginning, which is where ``auto_offset_reset =
earliest`` starts them anyway; what was processed before the clear comes again, and
every stage is idempotent on redelivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class Consumer(faust_aiokafka.Consumer):  # type: ignore[misc]  # Faust is untyped here
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
