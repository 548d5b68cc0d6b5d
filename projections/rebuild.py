"""``casestream projections rebuild NAME``: replay the log from offset 0 into a fresh store
generation, swap it in atomically, then remove the old generation.

* analytics (chdb): a new data directory ``<analytics_path>.gens/g...``; the configured
  path becomes a link to it (:mod:`projections.generations`). The old directory is
  removed unless a process still holds it (a ``projections run analytics`` started
  before the swap keeps writing there until it is restarted: stop it first);
* session (Redis): a new key generation ``cs:{prefix}~g...:``; one SET of
  ``cs:projection:session:{prefix}:live`` swaps it in. A running ``projections run
  session`` follows by itself: its next write finds its positions gone (the old
  generation is deleted positions first) and it re-reads the live generation's;
* crm (local SQLite store): a new database file, swapped in by a link like analytics.

A store that is a server (``CASESTREAM_CLICKHOUSE_URL``, Salesforce) has no generation
to swap: its rebuild is the replay from offset 0 into the same store, which the
projections' idempotency makes harmless (and, for Salesforce, upserts by external id).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from projections.generations import live_generation, new_generation, remove_generation, swap_in
from streams.settings import Settings

if TYPE_CHECKING:
    from projections.contract import RunStats

log = logging.getLogger("casestream.projections")
Report = dict[str, Any]


def _replay(settings: Settings, projection: Any) -> RunStats:
    from projections.runner import run_projection

    return run_projection(settings, projection, until_caught_up=True)


def _counts(stats: RunStats, summary: dict[str, int]) -> Report:
    return {
        "applied": stats.applied,
        "undecodable": stats.undecodable,
        "retries": stats.retries,
        "restarts": stats.restarts,
        **summary,
    }


def _swap_paths(live: Path, fresh: Path, held: Callable[[Path], bool]) -> Report:
    old = swap_in(live, fresh)
    report: Report = {"live": str(fresh), "previous": str(old) if old else None}
    if old is not None and old.exists():
        if held(old):
            report["previous_kept"] = "in use by another process: stop it, then delete it"
        else:
            remove_generation(old)
            report["previous_removed"] = True
    return report


def rebuild_analytics(settings: Settings) -> Report:
    from projections.analytics import AnalyticsProjection
    from projections.analytics.store import path_is_locked

    if settings.clickhouse_url:
        return rebuild_in_place(settings, AnalyticsProjection.from_settings(settings))
    live = Path(settings.analytics_path)
    fresh = new_generation(live)
    projection = AnalyticsProjection.from_settings(
        settings.model_copy(update={"analytics_path": fresh})
    )
    try:
        counts = _counts(_replay(settings, projection), projection.summary())
    finally:
        projection.close()
    return {**counts, **_swap_paths(live, fresh, path_is_locked)}


def rebuild_crm(settings: Settings) -> Report:
    from projections.crm.projection import CrmProjection

    if settings.crm_url:
        return rebuild_in_place(settings, CrmProjection.from_settings(settings))
    live = Path(settings.crm_sqlite_path)
    fresh = new_generation(live, live.suffix)
    projection = CrmProjection.from_settings(settings.model_copy(update={"crm_sqlite_path": fresh}))
    try:
        counts = _counts(_replay(settings, projection), projection.summary())
    finally:
        projection.close()
    return {**counts, **_swap_paths(live, fresh, lambda _: False)}


def rebuild_session(settings: Settings) -> Report:
    from projections.session import SessionProjection

    generation = f"g{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}{time.time_ns() % 1000:03d}"
    projection = SessionProjection.from_settings(settings, generation=generation)
    try:
        counts = _counts(_replay(settings, projection), projection.summary())
        previous = projection.promote()
        # Positions first (wipe's order), so a runner still on the old generation
        # finds them gone, rewinds and follows the live pointer.
        old = SessionProjection(projection.redis, settings, generation=previous)
        removed = old.wipe()
    finally:
        projection.close()
    return {**counts, "live": generation, "previous": previous, "previous_keys_removed": removed}


def rebuild_in_place(settings: Settings, projection: Any) -> Report:
    """Replay from offset 0 into the same store (a server): idempotent, nothing swapped."""
    try:
        deleted = projection.wipe()
        counts = _counts(_replay(settings, projection), projection.summary())
    finally:
        projection.close()
    return {**counts, "deleted": deleted, "live": "in place (a server store has no generations)"}


REBUILDS: dict[str, Callable[[Settings], Report]] = {
    "session": rebuild_session,
    "analytics": rebuild_analytics,
    "crm": rebuild_crm,
}

__all__ = ["REBUILDS", "live_generation", "rebuild_analytics", "rebuild_crm", "rebuild_session"]
