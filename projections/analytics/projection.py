"""The analytics projection: every event of the conversation topics, as rows in ClickHouse."""

from __future__ import annotations

from collections.abc import Sequence

from projections.analytics.rows import row_for
from projections.analytics.sql import EVENTS_TABLE
from projections.analytics.store import AnalyticsStore, ensure_schema, open_store
from projections.runner import Applied, Position
from streams.settings import Settings
from streams.topics import Topics


class AnalyticsProjection:
    """:class:`projections.runner.Projection` into an :class:`AnalyticsStore`.

    Each event becomes one row of ``analytics.events``; the row carries its source
    position, so the position is stored in the same write as the data. Idempotent by
    event id: a redelivered batch, or the same event at another offset, adds rows that
    every read collapses (ReplacingMergeTree + ``FINAL``), so no KPI counts it twice.

    Also what ``casestream projections run|rebuild`` manages: :meth:`from_settings`,
    :meth:`wipe`, :meth:`summary`, :meth:`close` (which closes the store).
    """

    name = "analytics"

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
        """Delete the rows read from this projection's topics (before a rebuild); returns
        how many rows there were."""
        params = {"topics": self._topics}
        where = "WHERE source_topic IN {topics:Array(String)}"
        count = int(
            self.store.query(f"SELECT count() AS n FROM {EVENTS_TABLE} {where}", params)[0]["n"]
        )
        if count:
            self.store.command(
                f"ALTER TABLE {EVENTS_TABLE} DELETE {where} SETTINGS mutations_sync = 2", params
            )
        return count

    def close(self) -> None:
        self.store.close()
