"""The analytics projection: every conversation event as a row in ClickHouse (chdb).

Public API: :class:`AnalyticsProjection` (the runner's ``Projection``), the
:class:`AnalyticsStore` port with :class:`ChdbStore` and :func:`open_store`,
:func:`compute_kpis` and :func:`tenant_query` (read-only, tenant-scoped ad-hoc SQL).
Importing this package does not import chdb; opening a store does.
"""

from projections.analytics.guard import QueryRefused, check_query, tenant_query
from projections.analytics.kpis import KpiParams, KpiReport, compute_kpis
from projections.analytics.projection import AnalyticsProjection
from projections.analytics.store import (
    AnalyticsStore,
    ChdbStore,
    StoreQueryError,
    StoreUnavailable,
    ensure_schema,
    open_store,
)

__all__ = [
    "AnalyticsProjection",
    "AnalyticsStore",
    "ChdbStore",
    "KpiParams",
    "KpiReport",
    "QueryRefused",
    "StoreQueryError",
    "StoreUnavailable",
    "check_query",
    "compute_kpis",
    "ensure_schema",
    "open_store",
    "tenant_query",
]
