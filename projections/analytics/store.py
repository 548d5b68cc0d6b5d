"""The analytics store port and its embedded adapter, chdb (ClickHouse in-process).

The scaled deployment puts a ClickHouse server behind the same port (clickhouse-connect,
same SQL files); the choice is made in one place, :func:`open_store`.

chdb runs one embedded ClickHouse server per process, on one data path:

* one process owns a data path: a second process gets a file lock error (chdb only says
  "Error initializing EmbeddedServer"; :class:`StoreUnavailable` says which path is held),
  and read-only mode does not help. Stop the projection before querying from another
  process, or query inside the process that runs it;
* a process serves one path at a time: another path opens only after every store on the
  first one is closed. Stores on the same path share the server.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, Self

from projections.analytics.columns import RAW_SCHEMA, EventBatch, batch_of_rows
from projections.analytics.rows import EventRow
from projections.analytics.sql import (
    INSERT_FIRST_SEEN_SQL,
    REFILL_ROLLUPS_SQL,
    ROLLUP_TABLES,
    ROLLUPS_MISSING_SQL,
    STAGE_TABLE,
    STORED_POSITIONS_SQL,
    ch_datetime,
    schema_statements,
)
from streams.settings import Settings

Params = Mapping[str, object]
Position = dict[tuple[str, int], int]


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class StoreUnavailable(RuntimeError):
    """The store cannot be opened (data path held by another process, bad path)."""


class StoreQueryError(RuntimeError):
    """ClickHouse refused or failed a statement; the message is ClickHouse's first line."""


class AnalyticsStore(Protocol):
    """Port of the analytics store (a ClickHouse engine holding ``schema.sql``).

    Query parameters are ClickHouse's ``{name:Type}`` placeholders, never string
    formatting; values may be ``str``, ``int``, ``float``, ``bool`` or ``datetime``.
    """

    def command(self, sql: str, params: Params | None = None) -> None:
        """Run one statement that returns no rows (DDL, INSERT ... SELECT)."""
        ...

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """Run one SELECT; rows as dicts in column order (JSON types: numbers, strings,
        ``None`` for NULL and NaN, lists for arrays)."""
        ...

    def insert_batch(self, batch: EventBatch) -> None:
        """Store the batch's events that are not stored yet (by event id) with the
        rollups, then the batch's positions (:func:`write_batch`). Safe to repeat: a
        batch written again, whole or in part, changes nothing."""
        ...

    def insert_events(self, rows: Sequence[EventRow]) -> None:
        """:meth:`insert_batch` for row dicts (:func:`~projections.analytics.rows.row_for`)."""
        ...

    def positions(self) -> Position:
        """Next offset per (topic, partition) of what is stored."""
        ...

    def close(self) -> None:
        """Release the store (for chdb: the data path, once no other store uses it)."""
        ...


def ensure_schema(store: AnalyticsStore) -> None:
    """Apply ``schema.sql`` (idempotent), and refill the rollups of a store written
    before its current rollup tables existed (once: a no-op when they hold rows)."""
    for statement in schema_statements():
        store.command(statement)
    state = store.query(ROLLUPS_MISSING_SQL)[0]
    if state["empty"] and state["data"]:
        refresh_rollups(store)


def write_batch(store: AnalyticsStore, batch: EventBatch, stage: Any) -> None:
    """The write of one batch, the same on every adapter: ``stage(table)`` loads the
    Arrow table into ``analytics.stage`` (emptied first); the first-seen events go on
    into the raw table, the event-id index and the rollups (one INSERT); the positions
    are written last (see ``schema.sql``)."""
    if batch.table is not None and batch.table.num_rows:
        store.command(f"TRUNCATE TABLE {STAGE_TABLE}")
        stage(batch.table)
        store.command(INSERT_FIRST_SEEN_SQL)
        store.command(f"TRUNCATE TABLE {STAGE_TABLE}")
    write_positions(store, batch.positions)


def write_positions(store: AnalyticsStore, positions: Position) -> None:
    if positions:
        values = ", ".join(
            f"({_quoted(topic)}, {int(partition)}, {int(next_offset)})"
            for (topic, partition), next_offset in sorted(positions.items())
        )
        store.command(f"INSERT INTO analytics.positions VALUES {values}")


def read_positions(store: AnalyticsStore) -> Position:
    """The stored positions. (A store written before ``analytics.positions`` existed
    has none: the runner reads from 0 once and the event-id index skips what is stored.)"""
    return {
        (r["topic"], int(r["partition"])): int(r["next"]) for r in store.query(STORED_POSITIONS_SQL)
    }


def refresh_rollups(store: AnalyticsStore) -> None:
    """Recompute the rollups from the deduplicated raw table (after rows were written or
    deleted around the ingest path, e.g. generated benchmark data or a wipe)."""
    for table in ROLLUP_TABLES:
        store.command(f"TRUNCATE TABLE {table}")
    store.command(REFILL_ROLLUPS_SQL)


def compact_rollups(store: AnalyticsStore) -> None:
    """Merge each rollup table's parts (``OPTIMIZE ... FINAL``; the tables are small):
    a message whose MessageReceived and DecisionMade came in different batches is then
    one row, which the dashboard reads without merging it (``rollups.sql``)."""
    for table in ROLLUP_TABLES:
        store.command(f"OPTIMIZE TABLE {table} FINAL")


def open_store(settings: Settings) -> AnalyticsStore:
    """The store the settings name, with its schema applied: a ClickHouse server when
    ``settings.clickhouse_url`` is set (env ``CASESTREAM_CLICKHOUSE_URL``, clickhouse-connect
    over HTTP), else the embedded default, chdb at ``settings.analytics_path`` (env
    ``CASESTREAM_ANALYTICS_PATH``)."""
    url = getattr(settings, "clickhouse_url", None)
    store: AnalyticsStore
    if url:
        from projections.analytics.clickhouse_http import ClickHouseConnectStore

        store = ClickHouseConnectStore(str(url))
    else:
        store = ChdbStore(Path(getattr(settings, "analytics_path", Path(".data/analytics"))))
    try:
        ensure_schema(store)
    except Exception:
        store.close()
        raise
    return store


def _tsv_escaped(text: str) -> str:
    # ClickHouse parses parameter values as escaped (TSV) text: a raw tab, newline or
    # backslash would be refused or change the value.
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + _tsv_escaped(value).replace("'", "\\'") + "'"
    if isinstance(value, bool | int | float):
        return repr(int(value) if isinstance(value, bool) else value)
    raise TypeError(f"unsupported array item {type(value).__name__}")


def param_value(value: object) -> object:
    """A query-parameter value as ClickHouse reads it: strings TSV-escaped, datetimes
    as DateTime64(3) text in UTC, lists and tuples as array literals (``Array(T)``)."""
    if isinstance(value, datetime):
        return ch_datetime(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        return _tsv_escaped(value)
    if isinstance(value, list | tuple):
        # Read by the Array text parser, which unescapes inside each quoted item.
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return value


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def path_is_locked(path: Path) -> bool:
    """Whether a chdb process holds the store at ``path`` (its ``status`` file lock)."""
    status = path / "status"
    if not status.exists():
        return False
    with status.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


class StoreAdapter(ABC):
    """What the adapters share: the batch write (:func:`write_batch`), the positions,
    the context manager. An adapter gives ``command``, ``query``, ``close`` and
    ``_stage`` (load an Arrow table into ``analytics.stage``)."""

    @abstractmethod
    def command(self, sql: str, params: Params | None = None) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _stage(self, table: Any) -> None: ...

    def insert_batch(self, batch: EventBatch) -> None:
        write_batch(self, batch, self._stage)

    def insert_events(self, rows: Sequence[EventRow]) -> None:
        self.insert_batch(batch_of_rows(rows))

    def positions(self) -> Position:
        return read_positions(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def json_rows(text: str) -> list[dict[str, Any]]:
    """The rows of a ``JSONEachRow`` answer."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class ChdbStore(StoreAdapter):
    """:class:`AnalyticsStore` on chdb's embedded ClickHouse, data on disk at ``path``."""

    def __init__(self, path: Path) -> None:
        from chdb import session as chdb_session  # heavy import (~1 s): only when used

        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._session: Any = chdb_session.Session(str(self.path))  # type: ignore[no-untyped-call]
        except Exception as exc:
            if path_is_locked(self.path):
                raise StoreUnavailable(
                    f"analytics store {self.path} is in use by another process "
                    "(chdb allows one process per data path: stop the projection first)"
                ) from exc
            raise StoreUnavailable(f"analytics store {self.path}: {first_line(exc)}") from exc

    def _run(self, sql: str, params: Params | None, fmt: str) -> str:
        values = {k: param_value(v) for k, v in (params or {}).items()}
        with self._lock:
            if self._session is None:
                raise StoreUnavailable(f"analytics store {self.path} is closed")
            try:
                result = self._session.query(sql, fmt, params=values or None)
            except Exception as exc:
                raise StoreQueryError(first_line(exc)) from exc
        return str(result)

    def command(self, sql: str, params: Params | None = None) -> None:
        self._run(sql, params, "TSV")

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        return json_rows(self._run(sql, params, "JSONEachRow"))

    def _stage(self, table: Any) -> None:
        # The table goes through an Arrow IPC file that ClickHouse reads on its own
        # threads: ``Python(table)`` reads the buffers through the interpreter and, with
        # the runner decoding the next batch at the same time, waited for the GIL so
        # long that inserts ran at a third of their speed.
        import pyarrow as pa

        with self._lock:
            if self._session is None:
                raise StoreUnavailable(f"analytics store {self.path} is closed")
            spool = self._spool()
            try:
                with (
                    pa.OSFile(str(spool), "wb") as sink,
                    pa.ipc.new_stream(sink, table.schema) as writer,
                ):
                    writer.write_table(table)
                self._session.query(
                    f"INSERT INTO {STAGE_TABLE} ({', '.join(RAW_SCHEMA.names)}) "
                    f"FROM INFILE {_quoted(str(spool))} FORMAT ArrowStream",
                    "TSV",
                )
            except Exception as exc:
                raise StoreQueryError(first_line(exc)) from exc
            finally:
                spool.unlink(missing_ok=True)

    def _spool(self) -> Path:
        shm = Path("/dev/shm")
        folder = shm if shm.is_dir() else self.path
        return folder / f"casestream-analytics-{os.getpid()}-{id(self)}.arrows"

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
