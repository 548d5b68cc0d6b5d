"""The analytics store on a ClickHouse server, over HTTP with clickhouse-connect.

The same port and the same SQL files as :class:`~projections.analytics.store.ChdbStore`;
the choice between them is made by :func:`~projections.analytics.store.open_store`
(``settings.clickhouse_url``, env ``CASESTREAM_CLICKHOUSE_URL``, e.g.
``http://user:password@host:8123``; ``https://`` for TLS).

How the port maps onto the client, and why:

* query parameters go through the server's ``{name:Type}`` binding (``param_NAME`` in the
  URL), with the values made the same text the chdb adapter sends: datetimes as
  ``DateTime64(3)`` text in UTC (the client's own formatting drops the milliseconds),
  booleans as ``0``/``1``; strings and arrays are escaped by the client;
* :meth:`query` reads ``JSONEachRow`` (raw bytes), as the chdb adapter does, so both
  adapters give the same JSON types (datetimes as text, ``None`` for NULL and NaN) and
  every KPI compares equal across them; 64-bit integers are asked unquoted;
* :meth:`insert_batch` stages the batch with one ``INSERT ... FORMAT Arrow`` (the
  client's ``insert_arrow``) and runs the same statements as the chdb adapter
  (:func:`~projections.analytics.store.write_batch`).
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Any

from projections.analytics.sql import STAGE_TABLE, ch_datetime
from projections.analytics.store import (
    Params,
    StoreAdapter,
    StoreQueryError,
    StoreUnavailable,
    first_line,
    json_rows,
)

#: Output settings that make the server's JSON the same as chdb's defaults.
JSON_SETTINGS = {
    "output_format_json_quote_64bit_integers": 0,
    "output_format_json_quote_denormals": 0,
}
_ENGINE_MESSAGE = re.compile(r"(Code: \d+\..*?)(?: \(for url [^)]*\))?$", re.MULTILINE)


def bind_value(value: object) -> object:
    """A parameter value for the client's server-side binding (see the module doc)."""
    if isinstance(value, datetime):
        return ch_datetime(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list | tuple):
        return [bind_value(v) for v in value]
    return value


def engine_message(exc: BaseException) -> str:
    """ClickHouse's own message (``Code: N. DB::Exception: ...``), not the driver's
    preamble; the driver's first line when the server said nothing."""
    found = _ENGINE_MESSAGE.search(str(exc))
    return found.group(1).strip() if found else first_line(exc)


def _is_unreachable(exc: BaseException) -> bool:
    # The driver's server errors carry ClickHouse's code; network errors carry none.
    from clickhouse_connect.driver.exceptions import OperationalError

    return isinstance(exc, OperationalError) and getattr(exc, "code", None) is None


class ClickHouseConnectStore(StoreAdapter):
    """:class:`AnalyticsStore` on a ClickHouse server at ``url`` (clickhouse-connect).

    ``client_options`` go to ``clickhouse_connect.get_client`` (e.g. ``compress``,
    ``connect_timeout``); the URL gives host, port, user, password and database.
    """

    def __init__(self, url: str, **client_options: Any) -> None:
        import clickhouse_connect  # heavy import: only when used

        self.url = url
        self._lock = threading.Lock()
        try:
            self._client: Any = clickhouse_connect.get_client(dsn=url, **client_options)
        except Exception as exc:
            raise StoreUnavailable(f"analytics store {_redacted(url)}: {first_line(exc)}") from exc

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:  # one HTTP session: the server refuses concurrent queries in it
            if self._client is None:
                raise StoreUnavailable(f"analytics store {_redacted(self.url)} is closed")
            try:
                return getattr(self._client, method)(*args, **kwargs)
            except Exception as exc:
                if _is_unreachable(exc):
                    raise StoreUnavailable(
                        f"analytics store {_redacted(self.url)}: {first_line(exc)}"
                    ) from exc
                raise StoreQueryError(engine_message(exc)) from exc

    @staticmethod
    def _parameters(params: Params | None) -> dict[str, object] | None:
        return {k: bind_value(v) for k, v in params.items()} if params else None

    def command(self, sql: str, params: Params | None = None) -> None:
        self._call("command", sql, parameters=self._parameters(params))

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        raw = self._call(
            "raw_query",
            sql,
            parameters=self._parameters(params),
            settings=JSON_SETTINGS,
            fmt="JSONEachRow",
        )
        return json_rows(bytes(raw).decode("utf-8"))

    def _stage(self, table: Any) -> None:
        self._call("insert_arrow", STAGE_TABLE, table)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _redacted(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//", url)
