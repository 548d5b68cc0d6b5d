"""``casestream analytics dashboard``: KPI tiles and hourly charts of one tenant, as a web page.

Everything is rendered on the server (HTML from ``dashboard.html``, charts as inline SVG),
so the page needs no script, no CDN and no internet. It reads the store through the
:class:`AnalyticsStore` port: :func:`compute_kpis` for the tiles, ``dashboard.sql`` and
``kpis.sql``'s ``sentiment_hourly`` for the series. JSON: ``/api/tenants``, ``/api/kpis``,
``/api/series`` (same ``tenant``, ``since``, ``until`` query parameters as the page).

The store is opened when the app starts (``store_factory()``) and closed when it stops;
chdb allows one process per data path, so run this where the projection is not running.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from html import escape
from importlib import resources
from string import Template
from typing import Annotated, Any, NamedTuple

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from projections.analytics.kpis import KpiParams, KpiReport, breakdown, compute_kpis, kpi_params
from projections.analytics.sql import kpi_queries, rollup_queries, whole_hours
from projections.analytics.store import AnalyticsStore

StoreFactory = Callable[[], AnalyticsStore]
Row = dict[str, Any]
DEFAULT_DAYS = 30


class Tile(NamedTuple):
    """One KPI tile: ``name`` is the summary column of ``kpis.sql`` (and ``data-kpi``)."""

    name: str
    label: str
    kind: str  # count | percent | ms | money
    hint: str


TILES = (
    Tile("messages", "Volume", "count", "messages received"),
    Tile("deflection_rate", "Deflection rate", "percent", "resolved without a human"),
    Tile("escalation_rate", "Escalation rate", "percent", "conversations escalated"),
    Tile("fcr_rate", "FCR", "percent", "first-contact resolution"),
    Tile("csat", "CSAT", "percent", "ratings of 4 or 5"),
    Tile("latency_p50_ms", "Latency p50", "ms", "message to decision"),
    Tile("latency_p99_ms", "Latency p99", "ms", "message to decision"),
    Tile("fallback_rate", "Fallback rate", "percent", "decisions by a non-primary model"),
    Tile("cost_per_resolution", "Cost / resolution", "money", "paid model calls"),
)


_FORMATS = {"count": "{:,}", "percent": "{:.1%}", "ms": "{:,.0f} ms", "money": "{:,.4f}"}


def format_value(kind: str, value: object) -> str:
    """A KPI as a tile shows it ("-" when undefined, e.g. no ratings)."""
    return "-" if value is None else _FORMATS[kind].format(value)


# --- SQL --------------------------------------------------------------------------------

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_END = re.compile(r";[ \t]*$", re.MULTILINE)


def _resource(name: str) -> str:
    return resources.files("projections.analytics").joinpath(name).read_text("utf-8")


@cache
def dashboard_queries() -> dict[str, str]:
    """The named queries of ``dashboard.sql``, without their trailing ``;``."""
    parts = _NAME.split(_resource("dashboard.sql"))
    pairs = zip(parts[1::2], parts[2::2], strict=True)
    return {name: _END.sub("", body.strip()).strip() for name, body in pairs}


def list_tenants(store: AnalyticsStore) -> list[str]:
    return [str(r["tenant"]) for r in store.query(dashboard_queries()["tenants"])]


def hourly_series(
    store: AnalyticsStore,
    tenant: str,
    since: datetime,
    until: datetime,
    params: KpiParams,
    report: KpiReport | None = None,
) -> dict[str, list[Row]]:
    """Messages per hour and the sentiment trend per hour (UTC hours); from the rollups
    when the range is whole hours (always, from the page). The sentiment trend is a
    table of the KPI report: pass the page's ``report`` and it is not asked again."""
    values = kpi_params(tenant, since, until, params)
    if whole_hours(since, until):
        messages = rollup_queries()["messages_hourly"]
    else:
        messages = dashboard_queries()["messages_hourly"]
    if report is not None and (report.tenant, report.since, report.until) == (tenant, since, until):
        sentiment = report.tables["sentiment_hourly"]  # the page has it already
    else:
        sentiment = breakdown(store, kpi_queries(since, until), values, "sentiment_hourly")
    return {"messages_per_hour": store.query(messages, values), "sentiment_per_hour": sentiment}


# --- charts (inline SVG) ----------------------------------------------------------------

W, H, LEFT, RIGHT, TOP, BOTTOM = 600, 220, 44, 12, 10, 28


def _x_labels(hours: Sequence[str], step: float) -> str:
    picks = sorted({0, len(hours) // 2, len(hours) - 1})
    return "".join(
        f'<text x="{LEFT + step * (i + 0.5):.1f}" y="{H - 8}" text-anchor="middle">'
        f"{escape(hours[i][5:16])}</text>"
        for i in picks
    )


def _frame(lo: float, hi: float, body: str, name: str) -> str:
    axis_y = H - BOTTOM
    grid = "".join(
        f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ec"/>'
        f'<text x="{LEFT - 6}" y="{y + 3:.1f}" text-anchor="end">{v:g}</text>'
        for v, y in ((hi, TOP), ((lo + hi) / 2, (TOP + axis_y) / 2), (lo, axis_y))
    )
    return (
        f'<svg data-series="{name}" viewBox="0 0 {W} {H}" width="100%" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">{grid}{body}</svg>'
    )


def _y(value: float, lo: float, hi: float) -> float:
    return TOP + (hi - value) / (hi - lo) * (H - BOTTOM - TOP)


def bar_chart(name: str, rows: Sequence[Row], key: str) -> str:
    if not rows:
        return '<div class="empty">no data in this range</div>'
    hours = [str(r["hour"]) for r in rows]
    hi = max(1.0, *(float(r[key]) for r in rows))
    step = (W - LEFT - RIGHT) / len(rows)
    bars = "".join(
        f'<rect data-hour="{escape(hours[i])}" data-value="{r[key]}" fill="#2f7ed8" '
        f'x="{LEFT + step * i + step * 0.1:.1f}" y="{_y(float(r[key]), 0, hi):.1f}" '
        f'width="{step * 0.8:.1f}" height="{_y(0, 0, hi) - _y(float(r[key]), 0, hi):.1f}">'
        f"<title>{escape(hours[i])}: {r[key]}</title></rect>"
        for i, r in enumerate(rows)
    )
    return _frame(0, hi, bars + _x_labels(hours, step), name)


def line_chart(name: str, rows: Sequence[Row], lines: Sequence[tuple[str, str]]) -> str:
    """One polyline per (column, colour) on a fixed -1..1 scale."""
    if not rows:
        return '<div class="empty">no data in this range</div>'
    hours = [str(r["hour"]) for r in rows]
    step = (W - LEFT - RIGHT) / len(rows)
    body = f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{_y(0, -1, 1):.1f}" y2="{_y(0, -1, 1):.1f}"'
    body += ' stroke="#b8bfcc" stroke-dasharray="3 3"/>'
    for key, colour in lines:
        points = [
            (LEFT + step * (i + 0.5), _y(float(r[key]), -1, 1), i, r[key])
            for i, r in enumerate(rows)
            if r.get(key) is not None
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        body += f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
        body += "".join(
            f'<circle data-line="{key}" data-hour="{escape(hours[i])}" data-value="{v!r}" '
            f'cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(hours[i])} '
            f"{key}: {float(v):.3f}</title></circle>"
            for x, y, i, v in points
        )
    return _frame(-1, 1, body + _x_labels(hours, step), name)


@dataclass(frozen=True)
class Selection:
    """What a request asks for: the store, its tenants, the chosen tenant and range."""

    store: AnalyticsStore
    tenants: list[str]
    tenant: str
    since: datetime
    until: datetime

    def head(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
        }


# --- page -------------------------------------------------------------------------------


def _tiles_html(summary: Row) -> str:
    return "".join(
        f'<div class="tile" data-kpi="{t.name}" data-value="{summary.get(t.name)!r}">'
        f'<div class="label">{escape(t.label)}</div>'
        f'<div class="value">{escape(format_value(t.kind, summary.get(t.name)))}</div>'
        f'<div class="hint">{escape(t.hint)}</div></div>'
        for t in TILES
    )


def render_page(sel: Selection, summary: Row, series: dict[str, list[Row]]) -> str:
    tenant, since, until = sel.tenant, sel.since, sel.until
    options = "".join(
        f'<option value="{escape(t)}"{" selected" if t == tenant else ""}>{escape(t)}</option>'
        for t in sel.tenants
    )
    conversations = summary.get("conversations", 0)
    return Template(_resource("dashboard.html")).substitute(
        tenant=escape(tenant),
        options=options or '<option value="">(no tenants)</option>',
        since=escape(since.isoformat()),
        until=escape(until.isoformat()),
        range_text=escape(
            f"{tenant or 'no tenant'}: {conversations} conversations, events from "
            f"{since.isoformat()} to {until.isoformat()} (UTC hours)"
        ),
        tiles=_tiles_html(summary),
        messages_chart=bar_chart("messages_per_hour", series["messages_per_hour"], "messages"),
        sentiment_chart=line_chart(
            "sentiment_per_hour",
            series["sentiment_per_hour"],
            (("avg_valence", "#2f7ed8"), ("avg_frustration", "#d9534f")),
        ),
    )


# --- the app ----------------------------------------------------------------------------


def _when(text: str | None, default: datetime, name: str) -> datetime:
    if not text:
        return default
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"{name}: not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def whole_hours_around(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """[since, until) widened to whole UTC hours: the page shows hours, and whole hours
    are what the rollups answer (``rollups.sql``)."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    floor = end.replace(minute=0, second=0, microsecond=0)
    return start, floor if floor == end else floor + timedelta(hours=1)


def _range(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    end = _when(until, datetime.now(UTC).replace(microsecond=0), "until")
    start = _when(since, end - timedelta(days=DEFAULT_DAYS), "since")
    if end <= start:
        raise HTTPException(400, "until must be after since")
    return whole_hours_around(start, end)


def select(
    request: Request,
    tenant: Annotated[str | None, Query(description="Tenant (default: the first)")] = None,
    since: Annotated[str | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[str | None, Query(description="ISO 8601, exclusive (now)")] = None,
) -> Selection:
    start, end = _range(since, until)
    store: AnalyticsStore = request.app.state.store
    tenants = list_tenants(store)
    chosen = tenant if tenant is not None else (tenants[0] if tenants else "")
    return Selection(store, tenants, chosen, start, end)


Selected = Annotated[Selection, Depends(select)]


def create_dashboard(store_factory: StoreFactory, params: KpiParams | None = None) -> FastAPI:
    """The dashboard app over the store ``store_factory()`` opens (closed on shutdown)."""
    knobs = params or KpiParams()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = store_factory()
        try:
            yield
        finally:
            app.state.store.close()

    app = FastAPI(title="casestream analytics dashboard", lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse)
    def page(sel: Selected) -> str:
        report = compute_kpis(sel.store, sel.tenant, sel.since, sel.until, knobs)
        series = hourly_series(sel.store, sel.tenant, sel.since, sel.until, knobs, report)
        return render_page(sel, report.summary, series)

    @app.get("/api/tenants")
    def api_tenants(request: Request) -> dict[str, list[str]]:
        return {"tenants": list_tenants(request.app.state.store)}

    @app.get("/api/kpis")
    def api_kpis(sel: Selected) -> dict[str, Any]:
        report = compute_kpis(sel.store, sel.tenant, sel.since, sel.until, knobs)
        tiles = [
            {"name": t.name, "label": t.label, "value": report.summary.get(t.name),
             "display": format_value(t.kind, report.summary.get(t.name))}
            for t in TILES
        ]  # fmt: skip
        return {**sel.head(), "tiles": tiles, "summary": report.summary, **report.tables}

    @app.get("/api/series")
    def api_series(sel: Selected) -> dict[str, Any]:
        return {**sel.head(), **hourly_series(sel.store, sel.tenant, sel.since, sel.until, knobs)}

    return app
