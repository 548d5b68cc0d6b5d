"""KPIs per tenant and time range, from the named queries of ``kpis.sql``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from projections.analytics.sql import kpi_queries
from projections.analytics.store import AnalyticsStore

#: The breakdown tables of a report, in display order (summary is the one-row query).
BREAKDOWNS = ("decisions", "escalation_reasons", "intent_mix", "sentiment_hourly", "channels")
#: The query of the rollups that answers several breakdowns at once (``rollups.sql``):
#: one row, a column per breakdown holding its rows.
COMBINED = "breakdowns"


@dataclass(frozen=True)
class KpiParams:
    """Knobs of the KPI definitions (see the comments in ``kpis.sql``)."""

    max_clarifications: int = 1
    cost_per_call: float = 0.0
    primary_model_prefix: str = "baseline"
    free_model_prefix: str = "baseline"

    @classmethod
    def from_settings(cls, settings: object, **overrides: Any) -> KpiParams:
        """Defaults from optional settings (``analytics_cost_per_call``,
        ``analytics_fcr_max_clarifications``); explicit overrides that are not None win."""
        values: dict[str, Any] = {
            "cost_per_call": float(getattr(settings, "analytics_cost_per_call", 0.0)),
            "max_clarifications": int(getattr(settings, "analytics_fcr_max_clarifications", 1)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class KpiReport:
    """The KPIs of ``tenant`` over events with occurred_at in [since, until)."""

    tenant: str
    since: datetime
    until: datetime
    params: KpiParams
    summary: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def kpi_params(tenant: str, since: datetime, until: datetime, params: KpiParams) -> dict[str, Any]:
    """The query parameters every named query of ``kpis.sql`` may use."""
    return {
        "tenant": tenant,
        "since": since,
        "until": until,
        "max_clarifications": params.max_clarifications,
        "cost_per_call": params.cost_per_call,
        "primary_model_prefix": params.primary_model_prefix,
        "free_model_prefix": params.free_model_prefix,
    }


def compute_kpis(
    store: AnalyticsStore,
    tenant: str,
    since: datetime,
    until: datetime,
    params: KpiParams | None = None,
) -> KpiReport:
    """Run every KPI query for one tenant and range (one query per table): over the
    rollups when the range is whole UTC hours, else over the raw events."""
    params = params or KpiParams()
    if until <= since:
        raise ValueError(f"empty range: until ({until}) is not after since ({since})")
    values = kpi_params(tenant, since, until, params)
    queries = kpi_queries(since, until)
    summary = store.query(queries["summary"], values)[0]
    return KpiReport(tenant, since, until, params, summary, breakdowns(store, queries, values))


def breakdowns(
    store: AnalyticsStore, queries: dict[str, str], values: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The breakdown tables, in :data:`BREAKDOWNS` order: one query each, or one query
    for all of them when ``queries`` has the combined one (the rollups')."""
    if COMBINED in queries:
        combined = store.query(queries[COMBINED], values)[0]
        return {name: combined[name] for name in BREAKDOWNS}
    return {name: store.query(queries[name], values) for name in BREAKDOWNS}


def breakdown(
    store: AnalyticsStore, queries: dict[str, str], values: dict[str, Any], name: str
) -> list[dict[str, Any]]:
    """One breakdown table (from the combined query when ``queries`` has no query of
    that name)."""
    if name in queries:
        return store.query(queries[name], values)
    return breakdowns(store, queries, values)[name]
