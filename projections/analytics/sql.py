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
TENANT_VIEW = "analytics.tenant_events"

#: Next offset per (topic, partition): the position is part of the data.
POSITIONS_SQL = f"""
SELECT source_topic AS topic, source_partition AS partition, max(source_offset) + 1 AS next
FROM {EVENTS_TABLE}
GROUP BY source_topic, source_partition
"""

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


@cache
def named_queries() -> dict[str, str]:
    """The queries of ``kpis.sql`` by name, without their trailing ``;``."""
    text = _read("kpis.sql")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        queries[name] = _END.sub("", body.strip()).strip()
    return queries


def ch_datetime(value: datetime) -> str:
    """A DateTime64(3, 'UTC') query-parameter value (naive datetimes are taken as UTC)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
