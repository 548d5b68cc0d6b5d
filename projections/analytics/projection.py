"""The analytics projection: every event of the conversation topics, as rows in ClickHouse."""

from __future__ import annotations

import time
from collections.abc import Sequence

from projections.analytics.columns import AvroDictDecoder, EventBatch, build_batch
from projections.analytics.rows import row_for
from projections.analytics.sql import EVENTS_TABLE
from projections.analytics.store import (
    AnalyticsStore,
    compact_rollups,
    ensure_schema,
    open_store,
    refresh_rollups,
)
from projections.contract import Applied, Position
from streams.bootstrap import build_registry
from streams.settings import Settings
from streams.steps import Record
from streams.topics import Topics

#: Least time between two compactions of the rollups when the runner is idle.
COMPACT_EVERY_S = 30.0


class AnalyticsProjection:
    """:class:`projections.contract.Projection` into an :class:`AnalyticsStore`.

    Each event becomes one row of ``analytics.events`` (with its source position) and
    is counted in the rollups; the batch's positions go into ``analytics.positions``
    after its data. Idempotent by event id: a redelivered batch, or the same event at
    another offset, is recognised by ``analytics.event_ids`` and stored nowhere again
    (and the raw table, a ReplacingMergeTree read with ``FINAL``, would collapse it
    anyway), so no KPI counts it twice.

    The runner uses the fast path, :meth:`prepare` (decode straight to an Arrow batch,
    no event objects; pure CPU) and :meth:`write` (the store's INSERTs), so it can
    prepare the next batch while the store writes this one; :meth:`apply` takes decoded
    events and gives the same rows.

    Also what ``casestream projections run|rebuild`` manages: :meth:`from_settings`,
    :meth:`wipe`, :meth:`summary`, :meth:`close` (which closes the store).
    """

    name = "analytics"
    concurrent_write = True  # the stores serialize their calls with a lock

    def __init__(self, store: AnalyticsStore, settings: Settings) -> None:
        self.store = store
        topics = Topics(settings.topic_prefix)
        self._topics = [
            topics.inbound,
            topics.enriched,
            topics.decisions,
            topics.outbound,
            topics.deliveries,
            topics.cases,
        ]
        self._settings = settings
        self._decoder: AvroDictDecoder | None = None
        self._dirty = False
        self._compacted = -COMPACT_EVERY_S
        ensure_schema(store)

    @classmethod
    def from_settings(cls, settings: Settings) -> AnalyticsProjection:
        """The projection on the store the settings name (chdb at ``analytics_path``)."""
        return cls(open_store(settings), settings)

    def topics(self) -> Sequence[str]:
        return list(self._topics)

    def positions(self) -> Position:
        mine = set(self._topics)
        return {tp: n for tp, n in self.store.positions().items() if tp[0] in mine}

    def apply(self, batch: Sequence[Applied]) -> None:
        if batch:
            self.store.insert_events([row_for(a.record, a.event) for a in batch])
            self._dirty = True

    def prepare(self, records: Sequence[Record]) -> EventBatch:
        if self._decoder is None:
            self._decoder = AvroDictDecoder(build_registry(self._settings))
        return build_batch(self._decoder, records)

    def write(self, prepared: EventBatch) -> None:
        self.store.insert_batch(prepared)
        if prepared.applied:
            self._dirty = True

    def idle(self) -> None:
        """The runner has nothing to read: compact the rollups if something was written
        since the last time and it is at least ``COMPACT_EVERY_S`` ago (keeps the
        dashboard's reads cheap; see :func:`compact_rollups`)."""
        now = time.monotonic()
        if self._dirty and now - self._compacted >= COMPACT_EVERY_S:
            compact_rollups(self.store)
            self._dirty, self._compacted = False, time.monotonic()

    def summary(self) -> dict[str, int]:
        """What the store holds from this projection's topics (events deduplicated)."""
        rows = self.store.query(
            "SELECT count() AS events, uniqExact(tenant_id) AS tenants, "
            "uniqExact(tenant_id, conversation_id) AS conversations "
            f"FROM {EVENTS_TABLE} FINAL WHERE source_topic IN {{topics:Array(String)}}",
            {"topics": self._topics},
        )
        return {k: int(v) for k, v in rows[0].items()}

    def wipe(self) -> int:
        """Delete what was read from this projection's topics (rows, positions) and
        recompute the event-id index and the rollups from what is left; returns how many
        rows there were."""
        params = {"topics": self._topics}
        where = "WHERE source_topic IN {topics:Array(String)}"
        count = int(
            self.store.query(f"SELECT count() AS n FROM {EVENTS_TABLE} {where}", params)[0]["n"]
        )
        sync = "SETTINGS mutations_sync = 2"
        if count:
            self.store.command(f"ALTER TABLE {EVENTS_TABLE} DELETE {where} {sync}", params)
        self.store.command(f"ALTER TABLE analytics.positions DELETE {where} {sync}", params)
        self.store.command("TRUNCATE TABLE analytics.event_ids")
        self.store.command(
            f"INSERT INTO analytics.event_ids SELECT occurred_at, event_id FROM {EVENTS_TABLE}"
        )
        refresh_rollups(self.store)
        return count

    def close(self) -> None:
        self.store.close()
