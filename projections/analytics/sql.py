"""The SQL of the analytics store, read from the ``.sql`` files beside this module.

``schema.sql`` holds idempotent statements separated by a line ending in ``;``;
``kpis.sql`` holds named queries, each introduced by a ``-- name: NAME`` line. Keeping the
SQL in files lets the same text run in ``clickhouse-client`` against a ClickHouse server
(the scaled deployment) and in chdb (the embedded default).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from importlib import resources

#: The raw table and the tenant-scoped view (qualified: the current database stays empty).
EVENTS_TABLE = "analytics.events"
#: Where a batch is staged before its first-seen events go on (see schema.sql).
STAGE_TABLE = "analytics.stage"
#: The rollup tables (fed by views; emptied and refilled by ``refresh_rollups``).
ROLLUP_TABLES = (
    "analytics.rollup_hourly",
    "analytics.rollup_conversations",
    "analytics.rollup_conversation_outcomes",
    "analytics.rollup_message_times",
)

#: Step 2 of a batch: the staged events not stored yet, one copy per event id, into
#: the view chain that fills the raw table, the event-id index and the rollups.
INSERT_FIRST_SEEN_SQL = f"""
INSERT INTO analytics.events_in
SELECT *
FROM {STAGE_TABLE}
WHERE (occurred_at, event_id) NOT IN (
    SELECT occurred_at, event_id
    FROM analytics.event_ids
    WHERE (occurred_at, event_id) IN (SELECT occurred_at, event_id FROM {STAGE_TABLE})
)
ORDER BY source_topic, source_partition, source_offset
LIMIT 1 BY event_id
"""

#: The rollups recomputed from the deduplicated raw table.
REFILL_ROLLUPS_SQL = f"INSERT INTO analytics.rollup_feed SELECT * FROM {EVENTS_TABLE} FINAL"

#: Whether the rollups need a refill from the raw table (``store.ensure_schema``): a store
#: written before ``rollup_conversation_outcomes`` and ``rollup_message_times`` replaced
#: older tables holds messages and decisions that either table lacks.
ROLLUPS_MISSING_SQL = """
SELECT
    (SELECT count() FROM analytics.rollup_conversation_outcomes) = 0
    OR (SELECT count() FROM analytics.rollup_message_times) = 0 AS empty,
    (SELECT count() FROM analytics.events
     WHERE event_type IN ('MessageReceived', 'DecisionMade') AND message_id != '') > 0 AS data
"""

#: Stored positions (written after each batch's data).
STORED_POSITIONS_SQL = """
SELECT source_topic AS topic, source_partition AS partition, max(next) AS next
FROM analytics.positions
GROUP BY source_topic, source_partition
"""
TENANT_VIEW = "analytics.tenant_events"

#: Widest range a DateTime64(3, 'UTC') holds: "all of time" for an unbounded query.
TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2299, 12, 31, tzinfo=UTC)

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_END = re.compile(r";[ \t]*$", re.MULTILINE)


def _read(name: str) -> str:
    return resources.files("projections.analytics").joinpath(name).read_text("utf-8")


def _strip_comment_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


@cache
def schema_statements() -> tuple[str, ...]:
    """The statements of ``schema.sql``, in order, without their ``;``."""
    body = _strip_comment_lines(_read("schema.sql"))
    return tuple(s.strip() for s in _END.split(body) if s.strip())


def _named(file: str) -> dict[str, str]:
    parts = _NAME.split(_read(file))
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        queries[name] = _END.sub("", body.strip()).strip()
    return queries


@cache
def named_queries() -> dict[str, str]:
    """The queries of ``kpis.sql`` by name, without their trailing ``;``."""
    return _named("kpis.sql")


#: Where rollups.sql's summary takes kpis.sql's final SELECT (the summary columns, from
#: the CTEs of the same names: written once).
SUMMARY_SELECT = "-- select: the summary columns of kpis.sql (sql.py puts its final SELECT here)"
_FINAL_SELECT = re.compile(r"^SELECT$", re.MULTILINE)


@cache
def rollup_queries() -> dict[str, str]:
    """The queries of ``rollups.sql`` by name: kpis.sql's over the rollup tables."""
    queries = _named("rollups.sql")
    if SUMMARY_SELECT not in queries["summary"]:
        raise ValueError(f"rollups.sql: the summary lacks the line {SUMMARY_SELECT!r}")
    raw = named_queries()["summary"]
    columns = raw[[m.start() for m in _FINAL_SELECT.finditer(raw)][-1] :]
    queries["summary"] = queries["summary"].replace(SUMMARY_SELECT, columns)
    return queries


def whole_hours(since: datetime, until: datetime) -> bool:
    """Whether [since, until) is made of whole UTC hours (then the rollups answer)."""
    utc = [t.astimezone(UTC) if t.tzinfo is not None else t for t in (since, until)]
    return all(t.minute == 0 and t.second == 0 and t.microsecond == 0 for t in utc)


def kpi_queries(since: datetime, until: datetime) -> dict[str, str]:
    """The queries that answer for [since, until): the rollups' for whole hours, else the
    raw table's (``kpis.sql``); both give the same numbers."""
    if whole_hours(since, until):
        return rollup_queries()
    return named_queries()


def ch_datetime(value: datetime) -> str:
    """A DateTime64(3, 'UTC') query-parameter value (naive datetimes are taken as UTC)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
