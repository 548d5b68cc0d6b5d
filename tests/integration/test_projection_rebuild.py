"""``projections rebuild``: the live projection over a stream, then a rebuild from offset 0
into a fresh store generation swapped in; live and rebuilt stores compared row for row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from events.base import Event
from events.decisions import CaseEscalated
from projections.analytics import AnalyticsProjection, ChdbStore
from projections.crm.projection import CrmProjection, external_id
from projections.generations import generations_dir
from projections.rebuild import rebuild_analytics, rebuild_crm, rebuild_session
from projections.runner import run_projection
from projections.session import SessionProjection
from streams.kafka import create_topics
from streams.settings import Settings
from streams.topics import PASS_THROUGH
from tests.integration.test_projection_store_down import publish
from tests.support import REPO, settings_env, unique_settings

pytestmark = pytest.mark.integration
RECORDS = 4_000
#: Columns that say where a copy was read: a pass-through event (on inbound and
#: enriched with one id) keeps whichever copy came first, which batching decides.
WHERE_READ = ("source_topic", "source_partition", "source_offset", "record_time")
PASS_THROUGH_TYPES = tuple(t.__name__ for t in PASS_THROUGH)


@pytest.fixture(scope="module")
def stream(kafka_bootstrap: str) -> tuple[Settings, list[Event]]:
    settings = unique_settings(kafka_bootstrap)
    create_topics(settings)
    return settings, publish(settings, RECORDS)


def dump_analytics(path: Path) -> dict[str, Any]:
    """Everything the store holds (sums of floats rounded: their order is the batches')."""
    with ChdbStore(path) as store:
        events = store.query("SELECT * FROM analytics.events FINAL ORDER BY event_id")
        for row in events:
            if row["event_type"] in PASS_THROUGH_TYPES:
                for column in WHERE_READ:
                    row.pop(column)
        return {
            "events": events,
            "hourly": store.query(
                "SELECT tenant_id, hour, metric, k1, k2, sum(n) AS n, round(sum(s1), 9) AS s1, "
                "sum(c1) AS c1, round(sum(s2), 9) AS s2, sum(c2) AS c2 FROM analytics.rollup_hourly "
                "GROUP BY ALL ORDER BY ALL"
            ),
            "conversations": store.query(
                "SELECT tenant_id, hour, conversation_id, sum(n_messages) AS m, "
                "sum(n_replies) AS r, sum(n_clarifications) AS c, sum(n_escalations) AS e, "
                "sum(n_unresolved) AS u FROM analytics.rollup_conversations "
                "GROUP BY ALL ORDER BY ALL"
            ),
            "messages": store.query(
                "SELECT * FROM analytics.rollup_message_times FINAL ORDER BY ALL"
            ),
            "conversation_outcomes": store.query(
                "SELECT * FROM analytics.rollup_conversation_outcomes FINAL ORDER BY ALL"
            ),
            "event_ids": store.query("SELECT count() AS n FROM analytics.event_ids FINAL"),
            "positions": store.positions(),
        }


def test_analytics_rebuild_swaps_in_an_identical_store(
    stream: tuple[Settings, list[Event]], tmp_path: Path
) -> None:
    base, events = stream
    ids = {e.event_id for e in events}
    settings = base.model_copy(update={"analytics_path": tmp_path / "analytics"})
    live = AnalyticsProjection.from_settings(settings)
    try:  # the live run, in batches cut differently from the rebuild's
        stats = run_projection(settings, live, until_caught_up=True, batch_size=300, batch_ms=20)
    finally:
        live.close()
    assert stats.applied == RECORDS
    before = dump_analytics(settings.analytics_path)
    assert len(before["events"]) == len(ids) and before["event_ids"] == [{"n": len(ids)}]

    report = rebuild_analytics(settings)

    assert report["applied"] == RECORDS and report["previous_removed"] is True
    assert settings.analytics_path.is_symlink()
    assert settings.analytics_path.resolve() == Path(report["live"]).resolve()
    assert not Path(report["previous"]).exists()  # the old one is gone
    assert dump_analytics(settings.analytics_path) == before

    again = rebuild_analytics(settings)  # from a generation to the next
    assert [p.name for p in generations_dir(settings.analytics_path).iterdir()] == [
        Path(again["live"]).name
    ]
    assert dump_analytics(settings.analytics_path) == before


def session_snapshot(client: redis.Redis, settings: Settings) -> dict[str, Any]:
    keys = SessionProjection(client, settings).keys  # the live generation
    return {
        str(k)[len(keys.namespace) :]: client.hgetall(k)
        for k in client.scan_iter(match=keys.scan_pattern(), count=1000)
        if keys.kind(str(k)) == "state"
    }


def test_session_rebuild_swaps_in_identical_hashes(
    stream: tuple[Settings, list[Event]], redis_url: str
) -> None:
    base, _ = stream
    settings = base.model_copy(update={"redis_url": redis_url})
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    live = SessionProjection.from_settings(settings)
    try:
        run_projection(settings, live, until_caught_up=True, batch_size=300, batch_ms=20)
        old_namespace = live.keys.namespace
        before = session_snapshot(client, settings)
        assert before

        report = rebuild_session(settings)

        assert report["previous"] == "" and report["live"] != ""
        assert session_snapshot(client, settings) == before
        assert not list(client.scan_iter(match=old_namespace + "*", count=1000))
        # The projection that was running follows the swap: it rewinds to the live
        # generation's positions and has nothing left to apply.
        follow = run_projection(settings, live, until_caught_up=True)
        assert follow.applied == 0 and live.keys.generation == report["live"]
        assert session_snapshot(client, settings) == before
    finally:
        SessionProjection.from_settings(settings).wipe()
        client.delete(f"cs:projection:session:{settings.topic_prefix}:live")
        live.close()
        client.close()


def crm_snapshot(settings: Settings, conversations: set[tuple[str, str]]) -> dict[str, Any]:
    projection = CrmProjection.from_settings(settings)
    try:
        store: Any = projection.store
        out = {}
        for tenant, conv in sorted(conversations):
            ext = external_id(tenant, conv)
            case = store.get_case(ext)
            out[ext] = (case, store.history(ext)) if case else None
        return {"cases": out, "positions": projection.positions()}
    finally:
        projection.close()


def test_crm_rebuild_swaps_in_identical_cases(
    stream: tuple[Settings, list[Event]], tmp_path: Path
) -> None:
    base, events = stream
    settings = base.model_copy(update={"crm_sqlite_path": tmp_path / "crm.sqlite"})
    escalated = {
        (e.envelope.tenant_id, e.envelope.conversation_id)
        for e in events
        if isinstance(e, CaseEscalated)
    }
    assert escalated
    live = CrmProjection.from_settings(settings)
    try:
        run_projection(settings, live, until_caught_up=True, batch_size=300, batch_ms=20)
    finally:
        live.close()
    before = crm_snapshot(settings, escalated)
    assert all(before["cases"].values())

    env = settings_env(settings)
    env["CASESTREAM_CRM_SQLITE_PATH"] = str(settings.crm_sqlite_path)
    cli = [sys.executable, "-c", "from projections.cli import projections_app; projections_app()"]
    done = subprocess.run(
        [*cli, "rebuild", "crm"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["previous_removed"] is True and settings.crm_sqlite_path.is_symlink()
    assert crm_snapshot(settings, escalated) == before

    report = rebuild_crm(settings)  # in process too, from a generation to the next
    assert crm_snapshot(settings, escalated) == before
