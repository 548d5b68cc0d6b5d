"""The analytics projection while its ClickHouse server goes away mid-stream and comes back:
clickhouse-connect against the local ClickHouse HTTP server (over chdb), stopped and
restarted on the same port. Every event arrives exactly once, and while the store is down
the runner stops reading (bounded batches in flight) instead of buffering the topic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from bench.analytics import traffic
from events.base import Event
from events.codec import AvroCodec
from projections.analytics import AnalyticsProjection
from projections.analytics.clickhouse_http import ClickHouseConnectStore
from projections.runner import Applied, RunStats, run_projection
from streams.kafka import EventPublisher, create_topics
from streams.settings import Settings
from streams.steps import Output
from streams.topics import PASS_THROUGH, Topics
from tests.fakes.clickhouse_http import ClickHouseHttpFake
from tests.support import unique_settings, wait_for

pytestmark = pytest.mark.integration
RECORDS = 6_000
BATCH = 250
IN_FLIGHT = 2


def publish(settings: Settings, n: int) -> list[Event]:
    """``n`` records of conversation traffic (lifecycle events also on enriched, as the
    enrich stage passes them through); returns the events published (copies once)."""
    codec, topics = AvroCodec(), Topics(settings.topic_prefix)
    publisher = EventPublisher(settings)
    events: list[Event] = []
    sent = 0
    for event in traffic(11, n, 1.0):
        key = event.key.encode()
        topic = topics.for_event(event)
        publisher.send(Output(topic, key, codec.encode(event, topic), event))
        sent += 1
        if isinstance(event, PASS_THROUGH) and sent < n:
            publisher.send(
                Output(topics.enriched, key, codec.encode(event, topics.enriched), event)
            )
            sent += 1
        events.append(event)
        if sent >= n:
            break
    publisher.flush(60)
    return events


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ClickHouseHttpFake]:
    with ClickHouseHttpFake(tmp_path / "chdb") as fake:
        yield fake


def test_every_event_arrives_once_after_the_store_comes_back(
    kafka_bootstrap: str, fake: ClickHouseHttpFake
) -> None:
    settings = unique_settings(kafka_bootstrap, clickhouse_url=fake.url)
    create_topics(settings)
    ids = {e.event_id for e in publish(settings, RECORDS)}
    store = ClickHouseConnectStore(fake.url, connect_timeout=2, send_receive_timeout=10)
    projection = AnalyticsProjection(store, settings)
    down = threading.Event()

    def on_batch(stats: RunStats) -> None:
        if stats.batches == 2 and not down.is_set():
            fake.stop()  # mid-stream: the next batches fail until it is back
            down.set()

    stats = RunStats()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            run_projection(
                settings,
                projection,
                until_caught_up=True,
                batch_size=BATCH,
                batch_ms=50,
                max_in_flight=IN_FLIGHT,
                max_backoff_s=0.2,
                on_batch=on_batch,
                stats=stats,
            )
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        wait_for(down.is_set, 60, "the store was stopped mid-stream")
        time.sleep(2.0)  # down for a while: the writer retries, the reader must wait
        assert runner.is_alive()
        read_ahead = stats.read - stats.applied
        retries_while_down = stats.retries
    finally:
        fake.start()
    runner.join(120)
    assert not runner.is_alive() and not failure, failure

    # Backpressure: while down, no more than the batch being retried, IN_FLIGHT queued
    # and one being prepared were read ahead (not the rest of the topic).
    assert retries_while_down > 0
    assert 0 < read_ahead <= (IN_FLIGHT + 2) * BATCH < RECORDS - 2 * BATCH
    assert stats.max_in_flight_seen <= IN_FLIGHT
    # The run read the topic once, and applied every record.
    assert stats.read == RECORDS and stats.applied == RECORDS and stats.undecodable == 0

    # Exactly once: every event id once in the raw table (no duplicate rows at all) and
    # in the rollups; the positions are the end of every partition.
    rows = store.query("SELECT count() AS rows, uniqExact(event_id) AS ids FROM analytics.events")
    assert rows == [{"rows": len(ids), "ids": len(ids)}]
    counted = store.query("SELECT sum(n) AS n FROM analytics.rollup_hourly WHERE metric = 'type'")
    assert counted == [{"n": len(ids)}]
    assert sum(projection.positions().values()) == RECORDS
    store.close()


class Recorder:
    """A projection that only records what it is given, with an in-memory position."""

    name = "recorder"

    def __init__(self, settings: Settings) -> None:
        t = Topics(settings.topic_prefix)
        self._topics = [t.inbound, t.enriched, t.decisions, t.outbound, t.deliveries, t.cases]
        self.batches: list[int] = []
        self.at: list[float] = []
        self.position: dict[tuple[str, int], int] = {}

    def topics(self) -> list[str]:
        return self._topics

    def positions(self) -> dict[tuple[str, int], int]:
        return dict(self.position)

    def apply(self, batch: Sequence[Applied]) -> None:
        self.batches.append(len(batch))
        self.at.append(time.monotonic())
        for a in batch:
            key = (a.record.topic, a.record.partition)
            self.position[key] = max(self.position.get(key, 0), a.record.offset + 1)


def test_a_batch_is_cut_by_size_or_by_time_whichever_first(kafka_bootstrap: str) -> None:
    settings = unique_settings(kafka_bootstrap)
    create_topics(settings)
    publish(settings, 700)
    by_size = Recorder(settings)
    run_projection(settings, by_size, until_caught_up=True, batch_size=300, batch_ms=1_000)
    assert sum(by_size.batches) == 700 and max(by_size.batches) <= 300

    # 700 records waiting, a batch of at most 10,000 records or 150 ms: the first batch
    # is cut by time, not held back until 10,000 records come.
    by_time = Recorder(settings)
    stop = threading.Event()
    started = time.monotonic()

    def first(stats: RunStats) -> None:
        stop.set()

    run_projection(settings, by_time, stop=stop, batch_size=10_000, batch_ms=150, on_batch=first)
    assert by_time.batches and by_time.at[0] - started < 5.0
    assert sum(by_time.batches) == 700
