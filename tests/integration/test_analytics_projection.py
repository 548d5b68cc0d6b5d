"""The analytics projection on a real broker: worker -> topics -> runner -> chdb -> KPIs."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from events.decisions import DecisionMade
from projections.analytics import AnalyticsProjection, ChdbStore, compute_kpis, tenant_query
from projections.runner import Position, run_projection
from replay.demo import SCENARIOS, START
from streams.kafka import create_topics
from streams.settings import Settings
from tests.integration.test_pipeline import publish_scenarios
from tests.support import TopicWatcher, WorkerProcess, unique_settings, wait_for

pytestmark = pytest.mark.integration
TOTAL_MESSAGES = sum(len(v) for v in SCENARIOS.values())


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, list[DecisionMade]]]:
    """The demo conversations through a live worker; yields the decisions on the topic."""
    tmp = tmp_path_factory.mktemp("analytics-it")
    settings = unique_settings(kafka_bootstrap, analytics_path=tmp / "analytics")
    create_topics(settings)
    worker = WorkerProcess(settings, tmp / "worker.log").start()
    decisions = TopicWatcher(settings, f"{settings.topic_prefix}.conversations.decisions")
    outbound = TopicWatcher(settings, f"{settings.topic_prefix}.conversations.outbound")
    try:
        publish_scenarios(settings)
        wait_for(
            lambda: (
                len({d.message_id for d in decisions.of_type("DecisionMade")}) >= TOTAL_MESSAGES
                and outbound.count() >= TOTAL_MESSAGES
            ),
            90,
            f"{TOTAL_MESSAGES} decided messages and replies\n{worker.log_tail()}",
        )
        # the act stage's results add decisions of their own, and can come after a quiet
        # spell on a loaded machine: stop the worker, then read the topics to their end
        worker.stop()
        seen = -1
        while seen != decisions.count() + outbound.count():
            seen = decisions.count() + outbound.count()
            time.sleep(3)
        made = decisions.of_type("DecisionMade")
    finally:
        decisions.close()
        outbound.close()
        worker.stop()
    yield settings, made


@pytest.fixture(scope="module")
def store(pipeline: tuple[Settings, list[DecisionMade]]) -> Iterator[ChdbStore]:
    settings, _ = pipeline
    with ChdbStore(settings.analytics_path) as store:
        yield store


class Rebuild(AnalyticsProjection):
    """The same projection, told to read every topic from offset 0 again."""

    def positions(self) -> Position:
        return {}


def test_the_projection_counts_what_the_worker_wrote(
    pipeline: tuple[Settings, list[DecisionMade]], store: ChdbStore
) -> None:
    settings, made = pipeline
    stats = run_projection(settings, AnalyticsProjection(store, settings), until_caught_up=True)
    assert stats.applied >= 4 * TOTAL_MESSAGES and stats.undecodable == 0

    report = compute_kpis(store, "demo", START - timedelta(days=1), START + timedelta(days=1))
    assert report.summary["messages"] == TOTAL_MESSAGES
    assert report.summary["conversations"] == len(SCENARIOS)
    assert report.summary["decisions"] == len({d.event_id for d in made}) >= TOTAL_MESSAGES
    by_action = {r["action"]: r["decisions"] for r in report.tables["decisions"]}
    assert by_action == dict(Counter(d.action for d in made))
    assert report.summary["latency_samples"] == TOTAL_MESSAGES
    assert report.summary["latency_p50_ms"] >= 0
    assert sum(r["messages"] for r in report.tables["intent_mix"]) == TOTAL_MESSAGES

    # Resuming from the stored positions reads nothing new.
    again = run_projection(settings, AnalyticsProjection(store, settings), until_caught_up=True)
    assert again.applied == 0

    # Reading every topic again from offset 0 (a redelivery of everything) changes no KPI.
    replay = run_projection(settings, Rebuild(store, settings), until_caught_up=True)
    assert replay.applied == stats.applied
    assert compute_kpis(store, "demo", report.since, report.until) == report

    rows = tenant_query(
        store, "SELECT count() AS n FROM events WHERE event_type = 'MessageReceived'", "demo"
    )
    assert rows == [{"n": TOTAL_MESSAGES}]
