"""Read-only, tenant-scoped ad-hoc queries over the analytics store.

A query is accepted only if ClickHouse's own parser (``parseQueryToJSON``, given the
text as a query parameter, so nothing is executed and a second statement is a syntax
error) shows a single SELECT (``WITH``, ``UNION``, ``INTERSECT``, ``EXCEPT`` allowed)
whose every table is ``events`` or one of the query's own CTEs: no qualified name (so
no ``system.*``, ``INFORMATION_SCHEMA.*``, ``analytics.*``), no table function (``file``,
``url``, ``numbers`` ...), no function that reaches outside the rows (``file``,
``dictGet``, ``joinGet``, ``ai*`` ...), no ``SETTINGS``, ``FORMAT``, ``INTO OUTFILE`` or
query parameters. The engine's canonical text of the query is then run inside

    WITH events AS (SELECT * FROM analytics.tenant_events(tenant = <T>, ...))
    SELECT * FROM (<query>) LIMIT <n> SETTINGS readonly = 1, ...

so ``events`` holds the tenant's deduplicated rows and nothing else. Unqualified names
resolve to CTEs or to the current database, ``default``, which holds no table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from projections.analytics.sql import TENANT_VIEW, TIME_MAX, TIME_MIN
from projections.analytics.store import AnalyticsStore, StoreQueryError

#: The one relation a tenant query reads.
EVENTS = "events"
MAX_QUERY_CHARS = 20_000
_DENIED_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "file",
        "hasColumnInTable",
        "getServerSetting",
        "getMergeTreeSetting",
        "getClientHTTPHeader",
        "currentRequestURL",
        "sleep",
        "sleepEachRow",
        "generateSerialID",
        "globalVariable",
        "showCertificate",
        "logTrace",
        "demangle",
        "filesystemAvailable",
        "filesystemCapacity",
        "filesystemUnreserved",
        "mergeTreePartInfo",
        "isMergeTreePartCoveredBy",
        "fuzzQuery",
        "evalMLMethod",
        "catboostEvaluate",
        "zookeeperSessionUptime",
    )
)
_DENIED_PREFIXES = ("dict", "joinget", "ai", "addressto", "region", "transaction", "__")
_IN_FUNCTIONS = frozenset(
    {"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin"}
)
_FORBIDDEN_KEYS = {
    "out_file": "INTO OUTFILE is not allowed",
    "format_ast": "a FORMAT clause is not allowed",
}
_LEADING = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)


class QueryRefused(ValueError):
    """The query is not a read-only, tenant-scoped SELECT; the message is one line."""


def _nodes(root: Any) -> Iterator[dict[str, Any]]:
    """Every dict in the tree (iteratively: a deeply nested query must not recurse)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _first_keyword(sql: str) -> str:
    rest = _LEADING.sub("", sql, count=1)
    match = re.match(r"[A-Za-z_]+", rest)
    return match.group(0).upper() if match else ""


def _check_function(name: str) -> None:
    low = name.lower()
    if low in _DENIED_FUNCTIONS or low.startswith(_DENIED_PREFIXES):
        raise QueryRefused(f"refused: function {name}() is not allowed in tenant queries")


def _literal_strings(node: dict[str, Any]) -> list[str]:
    if node.get("type") != "Literal":
        return []
    value = node.get("value") or {}
    items = value.get("value") if value.get("field_type") in ("Tuple", "Array") else [value]
    return [str(i.get("value")) for i in items or [] if i.get("field_type") == "String"]


def _check_tenant_filter(node: dict[str, Any], tenant: str) -> None:
    """Refuse ``tenant_id = 'other'`` / ``tenant_id IN ('other')``: a clear answer instead
    of an empty result (the rows are not there either way)."""
    if str(node.get("name", "")).lower() not in {"equals", "in", "globalin"}:
        return
    args = (node.get("arguments") or {}).get("children") or []
    names = [str(a.get("name", "")) for a in args if a.get("type") == "Identifier"]
    if not any(n == "tenant_id" or n.endswith(".tenant_id") for n in names):
        return
    for arg in args:
        others = [v for v in _literal_strings(arg) if v != tenant]
        if others:
            raise QueryRefused(
                f"refused: this query is scoped to tenant {tenant!r}; "
                f"tenant {others[0]!r} is another tenant's data"
            )


def check_ast(ast: dict[str, Any], tenant: str | None = None) -> None:
    """Raise :class:`QueryRefused` unless ``ast`` (parseQueryToJSON) is an allowed query
    (for ``tenant``, when given: naming another tenant's id is refused)."""
    if ast.get("type") != "SelectWithUnionQuery":
        what = str(ast.get("type", "?")).removesuffix("Query") or "?"
        raise QueryRefused(f"refused: only a single SELECT is allowed, not {what}")
    nodes = list(_nodes(ast))
    ctes = {str(n["name"]) for n in nodes if n.get("type") == "WithElement" and "name" in n}
    if EVENTS in ctes:
        raise QueryRefused(f"refused: `{EVENTS}` is this tenant's events and cannot be redefined")
    allowed = ctes | {EVENTS}
    for node in nodes:
        for key, reason in _FORBIDDEN_KEYS.items():
            if node.get(key) is not None:
                raise QueryRefused(f"refused: {reason}")
        kind = node.get("type")
        if kind == "SetQuery":
            raise QueryRefused("refused: a SETTINGS clause is not allowed")
        if kind == "QueryParameter":
            raise QueryRefused("refused: query parameters ({name:Type}) are not supported")
        if kind == "TableExpression" and node.get("table_function") is not None:
            name = node["table_function"].get("name", "?")
            raise QueryRefused(f"refused: table function {name}() is not allowed")
        if kind == "TableIdentifier":
            name = str(node.get("name", ""))
            if node.get("name_parts") or "." in name or name not in allowed:
                raise QueryRefused(
                    f"refused: table {name} is not readable; query `{EVENTS}` "
                    "(this tenant's events) or your own CTEs"
                )
        if kind == "Function":
            _check_function(str(node.get("name", "")))
            if tenant is not None:
                _check_tenant_filter(node, tenant)
            args = (node.get("arguments") or {}).get("children") or []
            if str(node.get("name", "")).lower() in _IN_FUNCTIONS and len(args) == 2:
                right = args[1]
                if right.get("type") == "Identifier" and (
                    right.get("name_parts") or right.get("name") not in allowed
                ):
                    raise QueryRefused(f"refused: IN {right.get('name')} is not allowed")
        if "func_name" in node:
            _check_function(str(node["func_name"]))


def check_query(store: AnalyticsStore, sql: str, tenant: str | None = None) -> str:
    """The engine's canonical text of ``sql`` if it is an allowed query, else
    :class:`QueryRefused`. Parsing runs in the store but executes nothing."""
    text = sql.strip()
    if not text:
        raise QueryRefused("refused: the query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryRefused(f"refused: the query is longer than {MAX_QUERY_CHARS} characters")
    keyword = _first_keyword(text)
    if keyword not in ("SELECT", "WITH"):
        raise QueryRefused(
            f"refused: only a single SELECT (or WITH ... SELECT) is allowed, not {keyword or '?'}"
        )
    try:
        rows = store.query(
            "SELECT parseQueryToJSON({q:String}) AS ast, formatQuerySingleLine({q:String}) AS sql",
            {"q": text},
        )
    except StoreQueryError as exc:
        message = str(exc)
        if "Multi-statements are not allowed" in message:
            raise QueryRefused("refused: one statement only (found a second after ';')") from exc
        raise QueryRefused(f"refused: not a query the guard can parse: {message}") from exc
    try:
        ast = json.loads(rows[0]["ast"])
    except RecursionError as exc:
        raise QueryRefused("refused: the query is nested too deeply") from exc
    check_ast(ast, tenant)
    return str(rows[0]["sql"])


def tenant_query(
    store: AnalyticsStore,
    sql: str,
    tenant: str,
    *,
    since: datetime = TIME_MIN,
    until: datetime = TIME_MAX,
    max_rows: int = 1000,
    max_seconds: int = 60,
) -> list[dict[str, Any]]:
    """Run ``sql`` over ``events`` = ``tenant``'s deduplicated events in [since, until).

    Raises :class:`QueryRefused` before running anything that is not allowed, and
    :class:`StoreQueryError` when ClickHouse rejects the query (unknown column ...).
    """
    canonical = check_query(store, sql, tenant)
    wrapped = (
        f"WITH {EVENTS} AS (SELECT * FROM {TENANT_VIEW}(tenant = {{__tenant:String}}, "
        "since = {__since:DateTime64(3, 'UTC')}, until = {__until:DateTime64(3, 'UTC')})) "
        f"SELECT * FROM ({canonical}) LIMIT {{__limit:UInt64}} "
        f"SETTINGS readonly = 1, max_execution_time = {int(max_seconds)}"
    )
    params = {"__tenant": tenant, "__since": since, "__until": until, "__limit": max_rows}
    return store.query(wrapped, params)
