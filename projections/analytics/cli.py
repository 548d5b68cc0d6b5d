"""``casestream analytics``: KPIs and read-only, tenant-scoped SQL over the analytics store.

Opens the chdb store at ``settings.analytics_path``: chdb lets one process own a data
path, so these commands fail with a clear message while the projection runs in another
process. Exit codes: 0 done, 1 the store failed or ClickHouse rejected the query,
2 refused (not a read-only query of this tenant's events) or bad arguments.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from streams.settings import load_settings

analytics_app = typer.Typer(
    help="Analytics over the event log: KPIs and read-only SQL per tenant (chdb).",
    no_args_is_help=True,
)

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant whose events are read.")]
SinceOpt = Annotated[
    str | None, typer.Option(help="Start of the range (ISO 8601, UTC if no zone), inclusive.")
]
UntilOpt = Annotated[str | None, typer.Option(help="End of the range (ISO 8601), exclusive.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
_PERCENT = {"deflection_rate", "escalation_rate", "fcr_rate", "csat", "fallback_rate", "share"}


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(message.splitlines()[0] if message else "failed", err=True)
    raise typer.Exit(code)


def _when(text: str | None, default: datetime, name: str) -> datetime:
    if text is None:
        return default
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--{name}: not an ISO 8601 time: {text!r}", 2)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@contextmanager
def _store() -> Iterator[Any]:
    from projections.analytics.store import StoreUnavailable, open_store

    try:
        store = open_store(load_settings())
    except StoreUnavailable as exc:
        _fail(str(exc), 1)
    try:
        yield store
    finally:
        store.close()


def _cell(name: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}" if name in _PERCENT else f"{value:.4g}"
    return str(value)


def _table(title: str, rows: Sequence[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    columns = list(rows[0]) if rows else ["(no rows)"]
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(c, row.get(c)) for c in columns))
    return table


@analytics_app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="One SELECT over `events` (this tenant's events).")],
    tenant: TenantOpt,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Most rows returned.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Run a read-only SELECT over `events`, which holds TENANT's deduplicated events.

    Writes, DDL, several statements, system tables, table functions and other tenants'
    rows are refused (exit code 2). The columns are those of schema.sql.
    """
    from projections.analytics.guard import QueryRefused, tenant_query
    from projections.analytics.sql import TIME_MAX, TIME_MIN
    from projections.analytics.store import StoreQueryError

    start = _when(since, TIME_MIN, "since")
    end = _when(until, TIME_MAX, "until")
    with _store() as store:
        try:
            rows = tenant_query(store, sql, tenant, since=start, until=end, max_rows=limit)
        except QueryRefused as exc:
            _fail(str(exc), 2)
        except StoreQueryError as exc:
            _fail(f"query failed: {exc}", 1)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    Console().print(_table(f"{len(rows)} rows (tenant {tenant})", rows))


@analytics_app.command("kpis")
def kpis(
    tenant: TenantOpt,
    since: SinceOpt = None,
    until: UntilOpt = None,
    max_clarifications: Annotated[
        int | None, typer.Option(min=0, help="First-contact resolution: most clarifications.")
    ] = None,
    cost_per_call: Annotated[
        float | None, typer.Option(min=0.0, help="Cost of one paid model call (baseline: 0).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print TENANT's KPIs for [--since, --until) (default: the last 30 days)."""
    from projections.analytics.kpis import KpiParams, compute_kpis
    from projections.analytics.store import StoreQueryError

    end = _when(until, datetime.now(UTC), "until")
    start = _when(since, end - timedelta(days=30), "since")
    if end <= start:
        _fail("--until must be after --since", 2)
    params = KpiParams.from_settings(
        load_settings(), max_clarifications=max_clarifications, cost_per_call=cost_per_call
    )
    with _store() as store:
        try:
            report = compute_kpis(store, tenant, start, end, params)
        except StoreQueryError as exc:
            _fail(f"kpis failed: {exc}", 1)
    if as_json:
        typer.echo(json.dumps({"summary": report.summary, **report.tables}, ensure_ascii=False))
        return
    console = Console()
    summary = [{"kpi": k, "value": _cell(k, v)} for k, v in report.summary.items()]
    console.print(_table(f"KPIs of {tenant}, {start.isoformat()} to {end.isoformat()}", summary))
    for name, rows in report.tables.items():
        console.print(_table(name.replace("_", " "), rows))


@analytics_app.command("dashboard")
def dashboard(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8090,
) -> None:
    """Serve the KPI dashboard (tiles and hourly charts per tenant) at http://HOST:PORT/.

    JSON at /api/tenants, /api/kpis and /api/series (?tenant=&since=&until=). Holds the
    store while it runs, so the projection cannot run in another process meanwhile.
    """
    import uvicorn

    from projections.analytics.dashboard import create_dashboard
    from projections.analytics.kpis import KpiParams

    params = KpiParams.from_settings(load_settings())
    with _store() as store:
        typer.echo(f"analytics dashboard on http://{host}:{port}/", err=True)
        uvicorn.run(create_dashboard(lambda: store, params), host=host, port=port)
