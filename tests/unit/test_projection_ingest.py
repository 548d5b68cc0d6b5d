"""The analytics ingest fast path (Avro -> JSON payload -> ``events_in`` -> typed columns in
ClickHouse) stores exactly the rows ``row_for`` defines, for every event type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from events.codec import AvroCodec
from events.conversation import ConversationStarted
from events.decisions import ClarificationRequested, DecisionMade
from events.delivery import EventRejected, ReplyDelivered
from events.enrichment import MessageEnriched
from projections.analytics import AnalyticsProjection, ChdbStore
from projections.analytics.rows import row_for
from projections.analytics.store import ensure_schema
from projections.runner import Applied
from streams.settings import Settings
from streams.steps import Record
from tests.unit.test_analytics_sql import DAY, PREFIX, TOPICS, Log, build_dataset, envelope


def _extras() -> list[Applied]:
    """Event types the KPI data set lacks (on partitions the data set does not use)."""
    log = Log()
    log.add(
        TOPICS.inbound,
        ConversationStarted(
            envelope=envelope(ConversationStarted, "acme", "x1", "x-start", DAY),
            channel="email",
        ),
        1,
        partition=5,
    )
    log.add(
        TOPICS.decisions,
        ClarificationRequested(
            envelope=envelope(ClarificationRequested, "acme", "x1", "x-ask", DAY),
            message_id="xm1",
            question='which one? \u00e9\t"quoted"',
            options=("a", "b"),
        ),
        2,
        partition=5,
    )
    log.add(
        TOPICS.deliveries,
        ReplyDelivered(
            envelope=envelope(ReplyDelivered, "acme", "x1", "x-dlv", DAY + timedelta(days=1)),
            reply_id="r1",
            channel="sms",
            status="failed",
            detail=None,
        ),
        3,
        partition=5,
    )
    log.add(
        TOPICS.deliveries,
        EventRejected(
            envelope=envelope(EventRejected, "acme", "x1", "x-rej", DAY),
            source_topic="t.inbound",
            source_partition=0,
            source_offset=7,
            stage="enrich",
            reason="undecodable",
            error_type="DecodeError",
            original_key=b"\x00k",
            original_value=b"\xff\xfe",
        ),
        4,
        partition=5,
    )
    return log.batch


def _with_values(batch: list[Applied]) -> list[Record]:
    codec = AvroCodec()
    records = []
    for a in batch:
        r = a.record
        value = codec.encode(a.event, r.topic)
        records.append(Record(r.topic, r.partition, r.offset, r.key, value, r.timestamp_ms))
    return records


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    with ChdbStore(Path(tmp_path_factory.mktemp("ingest"))) as store:
        ensure_schema(store)
        yield store


def _rows(store: ChdbStore) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT * FROM analytics.events ORDER BY source_topic, source_partition, source_offset"
    )
    for row in rows:
        row["payload"] = json.loads(row["payload"])
    return rows


def test_fast_path_stores_the_rows_row_for_defines(store: ChdbStore) -> None:
    batch = build_dataset() + _extras()
    # Optional values: no intents at all, a decision without an intent.
    enriched = next(a for a in batch if isinstance(a.event, MessageEnriched))
    decision = next(a for a in batch if isinstance(a.event, DecisionMade))
    for old, new in (
        (enriched, replace(enriched.event, intents=())),
        (decision, replace(decision.event, intent=None)),
    ):
        batch[batch.index(old)] = Applied(old.record, new)
    types = {type(a.event).__name__ for a in batch}
    assert len(types) >= 11, types
    projection = AnalyticsProjection(store, Settings(topic_prefix=PREFIX))

    expected = {}
    for a in batch:
        row: dict[str, Any] = dict(row_for(a.record, a.event))
        row["payload"] = json.loads(row["payload"])
        expected[(a.record.topic, a.record.partition, a.record.offset)] = row
    prepared = projection.prepare(_with_values(batch))
    assert prepared.undecodable == 0 and prepared.applied == len(batch)
    projection.write(prepared)
    got = _rows(store)

    # One row per event id (a lifecycle event is on inbound and enriched: one copy kept).
    assert len(got) == len({a.event.event_id for a in batch})
    for row in got:
        assert row == expected[(row["source_topic"], row["source_partition"], row["source_offset"])]
    store.command("TRUNCATE TABLE analytics.events")
    store.command("TRUNCATE TABLE analytics.event_ids")
    projection.apply(batch)  # the event path stores the same rows
    assert _rows(store) == got


def test_undecodable_records_are_counted_not_stored(store: ChdbStore) -> None:
    projection = AnalyticsProjection(store, Settings(topic_prefix=PREFIX))
    bad = [
        Record(TOPICS.inbound, 0, 1, None, b"", 0),
        Record(TOPICS.inbound, 0, 2, None, b"\x01\x00\x00\x00\x01xx", 0),
        Record(TOPICS.inbound, 0, 3, None, b"\x00\x00\x00\x00\x01\xff\xff", 0),
    ]
    prepared = projection.prepare(bad)
    assert prepared.undecodable == 3 and prepared.applied == 0 and prepared.table is None
    assert prepared.positions == {(TOPICS.inbound, 0): 4}  # read past them all the same
