"""The analytics projection on chdb (no Kafka): rows, positions, KPIs, idempotency, guard.

One chdb store per module (a process serves one data path at a time, and opening one
costs ~0.5 s). Events are crafted by hand and fed through ``AnalyticsProjection.apply``
with the records a runner would hand it; every KPI is checked against numbers computed
here by hand from that data set.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from events.base import Envelope, Event, derive_event_id
from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    FeedbackReceived,
    MessageReceived,
)
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.delivery import ReplyDelivered
from events.enrichment import IntentScore, MessageEnriched, ModelInfo, Sentiment
from projections.analytics import (
    AnalyticsProjection,
    AnalyticsStore,
    ChdbStore,
    KpiParams,
    QueryRefused,
    StoreQueryError,
    StoreUnavailable,
    compute_kpis,
    ensure_schema,
    open_store,
    tenant_query,
)
from projections.analytics.clickhouse_http import ClickHouseConnectStore
from projections.analytics.dashboard import dashboard_queries
from projections.analytics.kpis import BREAKDOWNS, breakdowns, kpi_params
from projections.analytics.rows import EventRow, row_for
from projections.analytics.sql import (
    TIME_MAX,
    TIME_MIN,
    kpi_queries,
    named_queries,
    rollup_queries,
    schema_statements,
    whole_hours,
)
from projections.analytics.store import compact_rollups
from projections.runner import Applied
from streams.settings import Settings
from streams.steps import Record
from streams.topics import Topics
from tests.fakes.clickhouse_http import ClickHouseHttpFake

BASELINE = ModelInfo(name="baseline-lexical", version="0.1.0", sha256="0" * 64)
ONNX = ModelInfo(name="onnx-minilm", version="2", sha256="1" * 64)
DAY = datetime(2026, 3, 1, tzinfo=UTC)
SINCE, UNTIL = DAY, DAY + timedelta(days=1)
PREFIX = "t"
TOPICS = Topics(PREFIX)


# --- a hand-made data set -------------------------------------------------------------


@dataclass
class Log:
    """Assigns offsets per topic partition, like a broker, and collects the batch."""

    batch: list[Applied] = field(default_factory=list)
    offsets: dict[str, itertools.count[int]] = field(default_factory=dict)

    def add(self, topic: str, event: Event, record_ms: int, partition: int = 0) -> None:
        offset = next(self.offsets.setdefault(f"{topic}/{partition}", itertools.count()))
        record = Record(topic, partition, offset, event.key.encode(), b"", record_ms)
        self.batch.append(Applied(record, event))


def envelope(cls: type[Event], tenant: str, conv: str, eid: str, at: datetime) -> Envelope:
    return Envelope(
        event_id=eid,
        event_type=cls.__name__,
        schema_version=1,
        occurred_at=at,
        tenant_id=tenant,
        conversation_id=conv,
        correlation_id=eid,
        causation_id=None,
        producer="test",
        producer_version="0",
    )


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


# fmt: off
# (tenant, conversation, time, top intent or None, score, sentiment, frustration, valence,
#  action, reason, reply latency ms). c4 and c5 are scored by a paid, non-baseline model;
# c5 is on email. c6 is exactly at `until` (out of range); "other" must never show up.
MESSAGES = [
    ("acme", "c1", at(10), "ACCOUNT/Password", 0.9, "neutral", 0.1, 0.0, "reply", "confident_intent", 100),
    ("acme", "c1", at(10, 5), "ACCOUNT/Password", 0.8, "positive", 0.0, 0.5, "reply", "confident_intent", 200),
    ("acme", "c2", at(10, 10), None, 0.0, "neutral", 0.2, -0.1, "clarify", "no_intent", 300),
    ("acme", "c2", at(10, 11), "TECHNICAL/API", 0.7, "neutral", 0.2, 0.0, "clarify", "below_threshold", 400),
    ("acme", "c2", at(10, 12), "TECHNICAL/API", 0.95, "neutral", 0.1, 0.1, "reply", "confident_intent", 500),
    ("acme", "c3", at(11), "BILLING/Refund", 0.6, "negative", 0.7, -0.6, "escalate", "customer_frustrated", 600),
    ("acme", "c4", at(11, 30), "human_request", 0.99, "negative", 0.5, -0.4, "escalate", "explicit_human_request", 700),
    ("acme", "c5", at(12), "DATA/Export", 0.9, "neutral", 0.0, 0.2, "reply", "confident_intent", 1500),
    ("acme", "c6", UNTIL, "DATA/Export", 0.9, "neutral", 0.1, 0.0, "reply", "confident_intent", 5),
    ("other", "c1", at(10), "BILLING/Invoice", 0.9, "neutral", 0.1, 0.0, "reply", "confident_intent", 9000),
    ("other", "c1", at(10, 1), "BILLING/Invoice", 0.9, "neutral", 0.1, 0.0, "escalate", "out_of_scope", 9000),
]
LATENCIES = [m[-1] for m in MESSAGES[:8]]  # acme's in-range messages
# (tenant, conversation, time, reason, priority)
CASES = [
    ("acme", "c3", at(11), "customer_frustrated", "high"),
    ("acme", "c4", at(11, 30), "explicit_human_request", "medium"),
    ("other", "c1", at(10, 1), "out_of_scope", "urgent"),
]
# fmt: on


def lifecycle_events() -> list[Event]:
    """Lifecycle events: c1 started, closed resolved, rated 5; c2 rated 3; c3 rated 1;
    c5 closed unresolved; "other" rated 1."""

    def env(cls: type[Event], tenant: str, conv: str, when: datetime) -> Envelope:
        return envelope(cls, tenant, conv, derive_event_id(conv, cls.__name__, when.minute), when)

    return [
        ConversationStarted(
            envelope=env(ConversationStarted, "acme", "c1", at(10)), channel="web_chat"
        ),
        ConversationClosed(
            envelope=env(ConversationClosed, "acme", "c1", at(10, 6)), reason="done", resolved=True
        ),
        FeedbackReceived(envelope=env(FeedbackReceived, "acme", "c1", at(10, 7)), rating=5),
        FeedbackReceived(envelope=env(FeedbackReceived, "acme", "c2", at(10, 20)), rating=3),
        FeedbackReceived(envelope=env(FeedbackReceived, "acme", "c3", at(11, 30)), rating=1),
        ConversationClosed(
            envelope=env(ConversationClosed, "acme", "c5", at(12, 1)), reason="done", resolved=False
        ),
        FeedbackReceived(envelope=env(FeedbackReceived, "other", "c1", at(10, 2)), rating=1),
    ]


def message_events(i: int, spec: tuple[Any, ...]) -> list[tuple[str, Event, int]]:
    """MessageReceived -> MessageEnriched -> DecisionMade (+ follow-ups), with record times."""
    tenant, conv, when, label, score, mood, frustration, valence, action, reason, latency = spec
    model = ONNX if conv in ("c4", "c5") and tenant == "acme" else BASELINE
    channel = "email" if conv == "c5" else "web_chat"
    mid, sent = f"{conv}-m{i}", ms(when) + 3

    def env(cls: type[Event]) -> Envelope:
        return envelope(cls, tenant, conv, derive_event_id(f"{tenant}/{mid}", cls.__name__), when)

    intents = (IntentScore(label=label, score=score),) if label else ()
    sentiment = Sentiment(label=mood, valence=valence, frustration=frustration)
    reply = env(ReplyRequested)
    out: list[tuple[str, Event, int]] = [
        (
            TOPICS.inbound,
            MessageReceived(
                envelope=env(MessageReceived),
                message_id=mid,
                channel=channel,
                text="hi",
                original_length=2,
                truncated=False,
            ),
            sent,
        ),
        (
            TOPICS.enriched,
            MessageEnriched(
                envelope=env(MessageEnriched),
                message_id=mid,
                channel=channel,
                text="hi",
                language="en",
                intents=intents,
                sentiment=sentiment,
                model=model,
            ),
            sent + 1,
        ),
        (
            TOPICS.decisions,
            DecisionMade(
                envelope=env(DecisionMade),
                message_id=mid,
                action=action,
                reason=reason,
                confidence=score,
                threshold=0.8,
                sentiment_label=mood,
                frustration=frustration,
                turn=1,
                policy_version="1",
                model=model,
                intent=label,
            ),
            sent + latency,
        ),
        (
            TOPICS.outbound,
            ReplyRequested(
                envelope=reply, reply_id=reply.event_id, message_id=mid, channel=channel, text="ok"
            ),
            sent + latency,
        ),
        (
            TOPICS.deliveries,
            ReplyDelivered(
                envelope=env(ReplyDelivered),
                reply_id=reply.event_id,
                channel=channel,
                status="delivered",
            ),
            sent + latency + 9,
        ),
    ]
    if action == "clarify":
        ask = ClarificationRequested(
            envelope=env(ClarificationRequested), message_id=mid, question="?", options=()
        )
        out.append((TOPICS.decisions, ask, sent + latency))
    return out


def build_dataset() -> list[Applied]:
    log = Log()
    for i, spec in enumerate(MESSAGES):
        for topic, event, record_ms in message_events(i, spec):
            log.add(topic, event, record_ms)
    for tenant, conv, when, reason, priority in CASES:
        case = CaseEscalated(
            envelope=envelope(CaseEscalated, tenant, conv, f"case-{tenant}-{conv}", when),
            case_id=f"case-{conv}",
            message_id="m",
            reason=reason,
            priority=priority,
            summary="s",
            confidence=0.5,
            sentiment_trajectory=(),
            transcript_ref="x",
        )
        log.add(TOPICS.cases, case, ms(when) + 50)
    for event in lifecycle_events():  # on inbound and, forwarded unchanged, on enriched
        log.add(TOPICS.inbound, event, ms(event.envelope.occurred_at))
        log.add(TOPICS.enriched, event, ms(event.envelope.occurred_at) + 20)
    return log.batch


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chdb_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    with ChdbStore(tmp_path_factory.mktemp("analytics")) as store:
        ensure_schema(store)
        yield store


@pytest.fixture(scope="module")
def store(chdb_store: ChdbStore) -> ChdbStore:
    """The store of this module's tests (a contract subclass may give another adapter)."""
    return chdb_store


@pytest.fixture(scope="module")
def projection(store: ChdbStore) -> AnalyticsProjection:
    return AnalyticsProjection(store, Settings(topic_prefix=PREFIX))


@pytest.fixture(scope="module")
def dataset(projection: AnalyticsProjection) -> list[Applied]:
    batch = build_dataset()
    projection.apply(batch)
    return batch


def kpis(store: ChdbStore, **params: Any) -> Any:
    return compute_kpis(store, "acme", SINCE, UNTIL, KpiParams(**params))


def quantile_exact(values: list[int], level: float) -> int:
    """ClickHouse's quantileExact: the element at floor(level * n) of the sorted values."""
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


# --- SQL files and rows ---------------------------------------------------------------


def test_sql_files_hold_the_schema_and_every_named_query() -> None:
    assert any("CREATE TABLE IF NOT EXISTS analytics.events" in s for s in schema_statements())
    assert set(named_queries()) == {
        "summary",
        "decisions",
        "escalation_reasons",
        "intent_mix",
        "sentiment_hourly",
        "channels",
    }


def test_rows_match_the_table_columns(store: ChdbStore) -> None:
    columns = [r["name"] for r in store.query("DESCRIBE TABLE analytics.events")]
    sample = build_dataset()[1]
    row = row_for(sample.record, sample.event)
    assert list(row) == columns


def test_schema_is_idempotent(store: ChdbStore) -> None:
    ensure_schema(store)
    ensure_schema(store)


# --- the store port (a contract every adapter passes) ---------------------------------


class AnalyticsStoreContract:
    """Run against every :class:`AnalyticsStore` adapter (a subclass gives ``store``)."""

    def test_parameters_reach_clickhouse_unchanged(self, store: AnalyticsStore) -> None:
        odd = "tab\there\nnew line \\ back 'quote' {brace} `tick` cr\r %s é"
        when = datetime(2026, 3, 1, 9, 30, 1, 250_000, tzinfo=UTC)
        row = store.query(
            "SELECT {s:String} AS s, {d:DateTime64(3, 'UTC')} AS d, {a:Array(String)} AS a, "
            "{n:UInt32} AS n, {f:Float64} AS f, {b:Bool} AS b, NULL AS z, nan AS q, "
            "toUInt64(18446744073709551615) AS big",
            {"s": odd, "d": when, "a": [odd, "x"], "n": 7, "f": 0.25, "b": True},
        )
        assert row == [
            {
                "s": odd,
                "d": "2026-03-01 09:30:01.250",
                "a": [odd, "x"],
                "n": 7,
                "f": 0.25,
                "b": True,
                "z": None,
                "q": None,
                "big": 18446744073709551615,
            }
        ]

    def test_long_parameters_reach_clickhouse(self, store: AnalyticsStore) -> None:
        # Too long for a URL: clickhouse-connect sends them as multipart form fields.
        long = "é'\t" * 40_000
        got = store.query(
            "SELECT length({s:String}) AS n, {s:String} = {a:Array(String)}[2] AS same",
            {"s": long, "a": ["x", long]},
        )
        assert got == [{"n": len(long.encode()), "same": True}]

    def test_inserted_rows_give_positions_and_read_back(self, store: AnalyticsStore) -> None:
        rows = [_row("contract", 3, offset, day=offset % 2) for offset in (0, 1, 2)]
        store.insert_events(rows)
        store.insert_events(rows[:2])  # again: positions and reads do not move
        store.insert_events([])
        assert store.positions()[("contract", 3)] == 3
        got = store.query(
            "SELECT count() AS n, min(occurred_at) AS first, max(record_time) AS rec, "
            "any(payload) != '' AS has_payload "
            "FROM analytics.events FINAL WHERE source_topic = {t:String}",
            {"t": "contract"},
        )
        assert got == [
            {
                "n": 3,
                "first": "2026-03-01 00:00:00.000",
                "rec": "1970-01-01 00:00:00.000",
                "has_payload": True,
            }
        ]

    def test_commands_take_parameters_and_ddl(self, store: AnalyticsStore) -> None:
        store.command("CREATE TABLE IF NOT EXISTS analytics.contract_t (s String) ENGINE = Memory")
        try:
            store.command("INSERT INTO analytics.contract_t SELECT {s:String}", {"s": "a\tb"})
            assert store.query("SELECT s FROM analytics.contract_t") == [{"s": "a\tb"}]
        finally:
            store.command("DROP TABLE IF EXISTS analytics.contract_t")

    def test_a_bad_statement_raises_the_engines_message(self, store: AnalyticsStore) -> None:
        with pytest.raises(StoreQueryError, match=r"UNKNOWN_TABLE|Unknown table") as failed:
            store.query("SELECT * FROM analytics.no_such_table")
        assert "\n" not in str(failed.value)
        with pytest.raises(StoreQueryError, match=r"SYNTAX_ERROR|Syntax error"):
            store.command("SELECT (")


class TestChdbStore(AnalyticsStoreContract):
    pass


@pytest.fixture(scope="module")
def clickhouse_fake(chdb_store: ChdbStore) -> Iterator[ClickHouseHttpFake]:
    """The ClickHouse HTTP interface over chdb, on the module store's data path (a process
    serves one chdb path at a time)."""
    with ClickHouseHttpFake(chdb_store.path) as fake:
        yield fake


@pytest.fixture(scope="module")
def http_store(clickhouse_fake: ClickHouseHttpFake) -> Iterator[ClickHouseConnectStore]:
    with ClickHouseConnectStore(clickhouse_fake.url) as store:
        ensure_schema(store)
        yield store


@pytest.fixture(scope="module")
def server_store() -> Iterator[ClickHouseConnectStore]:
    url = os.environ.get("CASESTREAM_CLICKHOUSE_URL")
    if not url:
        pytest.skip("CASESTREAM_CLICKHOUSE_URL is not set: no ClickHouse server to test")
    with ClickHouseConnectStore(url) as store:
        ensure_schema(store)
        yield store


class TestClickHouseConnectStore(AnalyticsStoreContract):
    """clickhouse-connect's real client, against the local HTTP endpoint over chdb."""

    @pytest.fixture
    def store(self, http_store: ClickHouseConnectStore) -> ClickHouseConnectStore:
        return http_store


class TestClickHouseServerStore(AnalyticsStoreContract):
    """The same contract against a real server, when ``CASESTREAM_CLICKHOUSE_URL`` names one."""

    @pytest.fixture
    def store(self, server_store: ClickHouseConnectStore) -> ClickHouseConnectStore:
        return server_store


def test_open_store_chooses_the_adapter_by_url(clickhouse_fake: ClickHouseHttpFake) -> None:
    remote = open_store(SimpleNamespace(clickhouse_url=clickhouse_fake.url))  # type: ignore[arg-type]
    try:
        assert isinstance(remote, ClickHouseConnectStore)
        assert remote.query(
            "SELECT count() > 0 AS ok FROM system.tables WHERE database = 'analytics'"
        ) == [{"ok": True}]
    finally:
        remote.close()
    with pytest.raises(StoreUnavailable, match=r"analytics store http://127\.0\.0\.1:9/"):
        ClickHouseConnectStore("http://user:pw@127.0.0.1:9/", connect_timeout=1)


def test_the_fake_serves_the_clients_own_native_reads_and_lz4_inserts(
    clickhouse_fake: ClickHouseHttpFake,
) -> None:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=clickhouse_fake.url)
    try:
        client.command(
            "CREATE TABLE IF NOT EXISTS analytics.fake_t (n UInt64, s String) ENGINE = Memory"
        )
        rows = [[i, f"row {i}"] for i in range(300_000)]
        summary = client.insert("analytics.fake_t", rows, column_names=["n", "s"])
        assert summary.written_rows == 300_000
        got = client.query("SELECT count(), sum(n), max(s) FROM analytics.fake_t").result_rows
        assert got == [(300_000, sum(range(300_000)), "row 99999")]
        assert client.query("SELECT n FROM analytics.fake_t WHERE n > 1e9").result_rows == []
        assert client.command("SELECT 'a', 'b'") == ["a", "b"]
        assert client.ping()
    finally:
        client.command("DROP TABLE IF EXISTS analytics.fake_t")
        client.close()
    sent = clickhouse_fake.requests
    assert ("default", "lz4", True) in sent  # the insert: chunked, lz4 frames
    assert {user for user, _, _ in sent} == {"default"}


def test_projection_summary_and_wipe_cover_only_its_topics(store: ChdbStore) -> None:
    settings = Settings(topic_prefix="wipe")
    projection = AnalyticsProjection(store, settings)
    topic = Topics("wipe").inbound
    projection.apply(
        [Applied(Record(topic, 0, i, None, b"", 0), _event(f"w{i}")) for i in range(4)]
    )
    assert projection.summary() == {"events": 4, "tenants": 1, "conversations": 1}
    assert projection.positions() == {(topic, 0): 4}
    assert projection.wipe() == 4
    assert projection.summary()["events"] == 0 and projection.positions() == {}
    assert store.positions()  # other prefixes' rows are still there


# --- KPIs -----------------------------------------------------------------------------


def test_summary_kpis_match_the_hand_computed_numbers(
    store: ChdbStore, dataset: list[Applied]
) -> None:
    s = kpis(store, max_clarifications=1, cost_per_call=0.01).summary
    assert s["messages"] == 8  # c1 2, c2 3, c3 1, c4 1, c5 1 (c6 is at `until`)
    assert s["conversations"] == 5
    assert s["decisions"] == 8
    assert s["escalated"] == 2 and s["escalation_rate"] == pytest.approx(2 / 5)  # c3, c4
    assert s["auto_resolved"] == 2 and s["deflection_rate"] == pytest.approx(2 / 5)  # c1, c2
    assert s["first_contact_resolved"] == 1 and s["fcr_rate"] == pytest.approx(1 / 5)  # c1
    assert s["ratings"] == 3 and s["csat"] == pytest.approx(1 / 3)  # 5, 3, 1
    assert s["avg_rating"] == pytest.approx(3.0)
    assert s["latency_samples"] == 8
    assert s["latency_p50_ms"] == quantile_exact(LATENCIES, 0.5) == 500
    assert s["latency_p90_ms"] == quantile_exact(LATENCIES, 0.9) == 1500
    assert s["latency_p99_ms"] == quantile_exact(LATENCIES, 0.99) == 1500
    assert s["fallback_decisions"] == 2 and s["fallback_rate"] == pytest.approx(2 / 8)  # c4, c5
    assert s["paid_model_calls"] == 2 and s["model_cost"] == pytest.approx(0.02)
    assert s["cost_per_resolution"] == pytest.approx(0.02 / 2)


def test_first_contact_resolution_follows_the_clarification_limit(
    store: ChdbStore, dataset: list[Applied]
) -> None:
    assert kpis(store, max_clarifications=2).summary["first_contact_resolved"] == 2  # c1, c2
    assert kpis(store, max_clarifications=0).summary["first_contact_resolved"] == 1


def test_baseline_only_costs_nothing_and_is_no_fallback(
    store: ChdbStore, dataset: list[Applied]
) -> None:
    s = kpis(store, cost_per_call=0.5, primary_model_prefix="", free_model_prefix="").summary
    assert s["fallback_decisions"] == 0  # every name starts with ''
    assert s["paid_model_calls"] == 0 and s["cost_per_resolution"] == 0


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (the rollups average as sum / count, avg() sums otherwise)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 24), (10, 13), (11, 12), (0, 1), (-48, 48)],
)
def test_rollups_give_the_raw_tables_numbers_for_whole_hours(
    store: ChdbStore, dataset: list[Applied], start: int, end: int
) -> None:
    since, until = DAY + timedelta(hours=start), DAY + timedelta(hours=end)
    assert whole_hours(since, until)
    values = kpi_params("acme", since, until, KpiParams(cost_per_call=0.01))
    raw, rolled = named_queries(), rollup_queries()
    assert set(raw) <= set(rolled) | set(BREAKDOWNS)
    assert set(BREAKDOWNS) <= set(raw) and "breakdowns" in rolled
    assert_rollups_match_raw(store, values)
    messages = store.query(dashboard_queries()["messages_hourly"], values)
    assert store.query(rolled["messages_hourly"], values) == messages


def test_rollups_give_the_raw_tables_numbers_for_the_open_range(
    store: ChdbStore, dataset: list[Applied]
) -> None:
    """The CLI's open range (1970 to 2299) is whole hours too: the rollups compare hours
    as DateTime, which must saturate past 2106 instead of wrapping around."""
    values = kpi_params("acme", TIME_MIN, TIME_MAX, KpiParams(cost_per_call=0.01))
    assert_rollups_match_raw(store, values)
    assert all(store.query(sql, values) for sql in named_queries().values())


def assert_rollups_match_raw(store: ChdbStore, values: dict[str, Any]) -> None:
    """Every query of kpis.sql gives what the rollups give (the summary, and each
    breakdown as compute_kpis reads it for whole hours: several from one query)."""
    raw, rolled = named_queries(), rollup_queries()
    want = {name: store.query(sql, values) for name, sql in raw.items()}
    got = {"summary": store.query(rolled["summary"], values), **breakdowns(store, rolled, values)}
    for name in raw:
        assert _close(got[name], want[name]), (name, got[name], want[name])


SPANNING = [  # (conversation, message, type, hour, minute, second, action, resolved)
    ("s1", "s1-m1", "MessageReceived", 9, 50, 0, "", None),
    ("s1", "s1-m1", "DecisionMade", 9, 50, 1, "reply", None),
    ("s1", "s1-m2", "MessageReceived", 10, 30, 0, "", None),
    ("s1", "s1-m2", "DecisionMade", 10, 30, 2, "clarify", None),
    ("s1", "s1-m3", "MessageReceived", 12, 40, 0, "", None),
    ("s1", "s1-m3", "DecisionMade", 12, 40, 1, "escalate", None),
    ("s1", "", "ConversationClosed", 13, 5, 0, "", False),
    ("s2", "s2-m1", "MessageReceived", 11, 10, 0, "", None),
    ("s2", "s2-m1", "DecisionMade", 11, 10, 1, "reply", None),
    ("s3", "s3-m1", "MessageReceived", 10, 59, 59, "", None),
    ("s3", "s3-m1", "DecisionMade", 11, 0, 30, "reply", None),
    ("s3", "", "ConversationClosed", 11, 20, 0, "", True),
]


@pytest.mark.parametrize("compacted", [False, True])
def test_the_summary_sums_per_hour_only_the_conversations_that_cross_the_range(
    store: ChdbStore, dataset: list[Applied], compacted: bool
) -> None:
    """Conversations over several hours (tenant 'spanco', written in one INSERT per
    event so the rollups hold unmerged parts, then compacted): a range that cuts one
    counts only its hours inside, as the raw query does."""
    if not compacted:
        for i, (conv, mid, etype, hour, minute, second, action, resolved) in enumerate(SPANNING):
            store.command(
                "INSERT INTO analytics.events_new (event_id, event_type, tenant_id, "
                "conversation_id, occurred_at, record_time, message_id, action, resolved) "
                "VALUES ({id:String}, {type:String}, 'spanco', {conv:String}, {at:DateTime64(3, 'UTC')}, "
                "{at:DateTime64(3, 'UTC')}, {mid:String}, {action:String}, "
                f"{'NULL' if resolved is None else str(resolved).lower()})",
                {"id": f"span-{i}", "type": etype, "conv": conv, "mid": mid, "action": action,
                 "at": at(hour, minute) + timedelta(seconds=second)},
            )  # fmt: skip
    else:
        compact_rollups(store)
    spans = store.query(
        "SELECT count() AS n FROM analytics.rollup_conversation_outcomes FINAL "
        "WHERE tenant_id = 'spanco' AND first_hour != last_hour"
    )
    assert int(spans[0]["n"]) == 2
    for start, end in [(9, 14), (10, 13), (10, 11), (11, 12), (12, 13), (11, 14), (0, 24)]:
        values = kpi_params("spanco", at(start), at(end), KpiParams(max_clarifications=0))
        want = store.query(named_queries()["summary"], values)[0]
        got = store.query(rollup_queries()["summary"], values)[0]
        assert _close(got, want), (start, end, got, want)


# Messages of tenant 'actco' with a second DecisionMade (the act stage decides again on an
# action's result, later): (message, [(type, occurred at, record ms after it, action)] per
# INSERT). The latency pairs the MessageReceived with the FIRST decision by record time,
# whatever the batches: in a1 the first decision is written before its message, whose
# batch holds the second one (one rollup row then pairs the message with the second).
TWO_DECISIONS = [
    ("a1", [[("DecisionMade", at(10, 5), 120, "act")],
            [("MessageReceived", at(10, 5), 20, ""), ("DecisionMade", at(10, 5), 900, "reply")]]),
    ("a2", [[("MessageReceived", at(10, 6), 0, "")], [("DecisionMade", at(10, 6), 50, "act")],
            [("DecisionMade", at(10, 6), 700, "clarify")]]),
    ("a3", [[("MessageReceived", at(11, 0), 0, ""), ("DecisionMade", at(11, 0), 30, "act"),
             ("DecisionMade", at(11, 0), 400, "reply")]]),
    # the first decision occurred an hour earlier (synthetic): it is out of a range from
    # 11:00, where the second one lies, so the message counts in no such range
    ("a4", [[("MessageReceived", at(11, 30), 0, "")], [("DecisionMade", at(10, 59), 40, "act")],
            [("DecisionMade", at(11, 30), 800, "reply")]]),
]  # fmt: skip


@pytest.mark.parametrize("compacted", [False, True])
def test_the_latency_pairs_a_message_with_its_first_decision(
    store: ChdbStore, dataset: list[Applied], compacted: bool
) -> None:
    if not compacted:
        for mid, inserts in TWO_DECISIONS:
            for n, rows in enumerate(inserts):
                values = ", ".join(
                    f"('{mid}-{n}-{i}', '{etype}', 'actco', 'conv-{mid}', "
                    f"'{when:%Y-%m-%d %H:%M:%S}', "
                    f"'{when + timedelta(milliseconds=later):%Y-%m-%d %H:%M:%S.%f}', "
                    f"'{mid}', '{action}')"
                    for i, (etype, when, later, action) in enumerate(rows)
                )
                store.command(
                    "INSERT INTO analytics.events_new (event_id, event_type, tenant_id, "
                    "conversation_id, occurred_at, record_time, message_id, action) "
                    f"VALUES {values}"
                )
    else:
        compact_rollups(store)
    whole_day = kpi_params("actco", at(0), at(24), KpiParams())
    s = store.query(rollup_queries()["summary"], whole_day)[0]
    # a1: 120 - 20, a2: 50, a3: 30, a4: 40 (never the second decision's 880, 700, 400, 800)
    assert s["latency_samples"] == 4
    assert (s["latency_p50_ms"], s["latency_p99_ms"]) == (50, 100)
    assert s["decisions"] == 8
    for start, end in [(0, 24), (10, 11), (11, 12), (10, 12)]:
        values = kpi_params("actco", at(start), at(end), KpiParams())
        want = store.query(named_queries()["summary"], values)[0]
        got = store.query(rollup_queries()["summary"], values)[0]
        assert _close(got, want), (start, end, got, want)
    from_11 = store.query(
        rollup_queries()["summary"], kpi_params("actco", at(11), at(12), KpiParams())
    )
    assert from_11[0]["latency_samples"] == 1  # a3 only (a4's first decision is at 10:59)


@pytest.mark.parametrize(
    "table", ["analytics.rollup_conversation_outcomes", "analytics.rollup_message_times"]
)
def test_the_schema_refills_the_rollups_of_an_older_store(
    store: ChdbStore, dataset: list[Applied], table: str
) -> None:
    values = kpi_params("acme", at(10), at(13), KpiParams())
    want = store.query(rollup_queries()["summary"], values)
    store.command(f"TRUNCATE TABLE {table}")  # as in a store written before it existed
    assert store.query(rollup_queries()["summary"], values) != want
    ensure_schema(store)
    ensure_schema(store)  # once only
    assert store.query(rollup_queries()["summary"], values) == want
    assert store.query(named_queries()["summary"], values) == want


def test_ranges_that_are_not_whole_hours_read_the_raw_table() -> None:
    assert not whole_hours(DAY + timedelta(minutes=30), DAY + timedelta(hours=2))
    assert kpi_queries(DAY, DAY + timedelta(seconds=1)) is named_queries()
    assert kpi_queries(DAY, DAY + timedelta(hours=1)) is rollup_queries()


def test_breakdowns_match_the_hand_computed_numbers(
    store: ChdbStore, dataset: list[Applied]
) -> None:
    t = kpis(store).tables
    assert t["decisions"] == [
        {"action": "reply", "decisions": 4},
        {"action": "clarify", "decisions": 2},
        {"action": "escalate", "decisions": 2},
    ]
    assert t["escalation_reasons"] == [
        {"reason": "customer_frustrated", "priority": "high", "cases": 1},
        {"reason": "explicit_human_request", "priority": "medium", "cases": 1},
    ]
    mix = {r["top_intent"]: (r["messages"], r["share"]) for r in t["intent_mix"]}
    assert mix == {
        "ACCOUNT/Password": (2, pytest.approx(2 / 8)),
        "TECHNICAL/API": (2, pytest.approx(2 / 8)),
        "(none)": (1, pytest.approx(1 / 8)),
        "BILLING/Refund": (1, pytest.approx(1 / 8)),
        "human_request": (1, pytest.approx(1 / 8)),
        "DATA/Export": (1, pytest.approx(1 / 8)),
    }
    hours = {r["hour"]: r for r in t["sentiment_hourly"]}
    assert list(hours) == ["2026-03-01 10:00:00", "2026-03-01 11:00:00", "2026-03-01 12:00:00"]
    h10, h11, h12 = hours.values()
    assert (h10["messages"], h10["negative"], h10["neutral"], h10["positive"]) == (5, 0, 4, 1)
    assert h10["avg_frustration"] == pytest.approx((0.1 + 0.0 + 0.2 + 0.2 + 0.1) / 5)
    assert h10["avg_valence"] == pytest.approx((0.0 + 0.5 - 0.1 + 0.0 + 0.1) / 5)
    assert (h11["messages"], h11["negative"]) == (2, 2)
    assert h11["avg_frustration"] == pytest.approx(0.6) and h11["avg_valence"] == pytest.approx(
        -0.5
    )
    assert (h12["messages"], h12["neutral"]) == (1, 1)
    assert t["channels"] == [
        {"channel": "web_chat", "messages": 7},
        {"channel": "email", "messages": 1},
    ]


def test_an_empty_range_has_no_rates_instead_of_a_division_by_zero(
    store: ChdbStore, dataset: list[Applied]
) -> None:
    s = compute_kpis(store, "acme", DAY - timedelta(days=9), DAY - timedelta(days=8)).summary
    assert s["messages"] == 0 and s["conversations"] == 0
    assert s["deflection_rate"] is None and s["csat"] is None and s["latency_p50_ms"] is None


# --- positions and idempotency --------------------------------------------------------


PASS_THROUGH = (ConversationStarted, ConversationClosed, FeedbackReceived)


def test_positions_are_the_next_offset_of_every_partition(
    projection: AnalyticsProjection, dataset: list[Applied]
) -> None:
    expected: dict[tuple[str, int], int] = {}
    for a in dataset:
        key = (a.record.topic, a.record.partition)
        expected[key] = max(expected.get(key, 0), a.record.offset + 1)
    positions = projection.positions()
    for key, next_offset in expected.items():
        # Exact, except that a lifecycle event is on inbound and enriched with one id and
        # only one copy survives dedup: if the dropped copy was a partition's last record,
        # the position is that record (read again after a restart, harmlessly).
        assert positions[key] <= next_offset
        tail = [
            a.event
            for a in dataset
            if (a.record.topic, a.record.partition) == key and a.record.offset >= positions[key]
        ]
        assert all(isinstance(e, PASS_THROUGH) for e in tail), key
    exact = [k for k in expected if k[0] not in (TOPICS.inbound, TOPICS.enriched)]
    assert {k: positions[k] for k in exact} == {k: expected[k] for k in exact}
    assert set(projection.topics()) == {
        TOPICS.inbound,
        TOPICS.enriched,
        TOPICS.decisions,
        TOPICS.outbound,
        TOPICS.deliveries,
        TOPICS.cases,
    }


def test_a_redelivered_batch_and_a_re_emitted_event_do_not_double_count(
    store: ChdbStore, projection: AnalyticsProjection, dataset: list[Applied]
) -> None:
    def raw() -> int:
        return int(store.query("SELECT count() AS n FROM analytics.events")[0]["n"])

    before = kpis(store, cost_per_call=0.01)
    store.command("SYSTEM STOP MERGES analytics.events")  # keep the copies until we look
    try:
        raw_before = raw()
        projection.apply(dataset)  # the runner hands the same batch again (crash before commit)
        # A worker that crashed re-emits a decision: same event id, at a later offset.
        decision = next(a for a in dataset if isinstance(a.event, DecisionMade))
        last = max(a.record.offset for a in dataset if a.record.topic == TOPICS.decisions)
        r = decision.record
        again = Record(r.topic, r.partition, last + 5, r.key, r.value, r.timestamp_ms + 10)
        projection.apply([Applied(again, decision.event)])
        # No copy is stored (the event-id index knows them all) and no KPI counts one twice.
        assert raw() == raw_before
        assert kpis(store, cost_per_call=0.01) == before
        assert projection.positions()[(TOPICS.decisions, 0)] == last + 6
    finally:
        store.command("SYSTEM START MERGES analytics.events")
    store.command("OPTIMIZE TABLE analytics.events FINAL")
    assert raw() == store.query("SELECT count() AS n FROM analytics.events FINAL")[0]["n"]
    assert projection.positions()[(TOPICS.decisions, 0)] == last + 6  # the later copy won
    assert kpis(store, cost_per_call=0.01) == before


class FailingStore(ChdbStore):
    """A chdb store whose statements starting with ``fail_on`` fail, as if the process
    died there."""

    def __init__(self, path: Path, fail_on: str) -> None:
        super().__init__(path)
        self.fail_on = fail_on

    def command(self, sql: str, params: Any = None) -> None:
        if sql.strip().startswith(self.fail_on):
            raise RuntimeError("store went away")
        super().command(sql, params)


@pytest.mark.parametrize(
    "fail_on", ["TRUNCATE", "INSERT INTO analytics.events_in", "INSERT INTO analytics.positions"]
)
def test_a_failure_anywhere_in_a_write_never_skips_nor_double_counts(
    store: ChdbStore, fail_on: str
) -> None:
    # one prefix per case (str hashes vary per process: two cases once shared one)
    prefix = "crash-" + fail_on.split()[-1].replace(".", "-").lower()
    settings = Settings(topic_prefix=prefix)
    topic = Topics(prefix).inbound
    log = Log()
    days = [DAY, DAY, DAY + timedelta(days=1), DAY, DAY + timedelta(days=1)]
    for i, when in enumerate(days):
        ev = MessageReceived(
            envelope=envelope(MessageReceived, prefix, f"k{i}", f"{prefix}-{i}", when),
            message_id=f"m{i}",
            channel="web_chat",
            text="x",
            original_length=1,
            truncated=False,
        )
        log.add(topic, ev, 0, partition=i % 2)
    failing = FailingStore(store.path, fail_on=fail_on)
    try:
        with pytest.raises(Exception, match="store went away"):
            AnalyticsProjection(failing, settings).apply(log.batch)
    finally:
        failing.close()
    # The position only moves once everything is stored: the runner reads the batch again.
    assert not {k: v for k, v in store.positions().items() if k[0] == topic}
    AnalyticsProjection(store, settings).apply(log.batch)  # the runner retries the batch
    assert {k: v for k, v in store.positions().items() if k[0] == topic} == {
        (topic, 0): 3,
        (topic, 1): 2,
    }
    counted = store.query(
        "SELECT sum(n) AS n FROM analytics.rollup_hourly "
        "WHERE tenant_id = {t:String} AND metric = 'type'",
        {"t": prefix},
    )
    assert counted == [{"n": 5}]
    stored = store.query(
        "SELECT count() AS n FROM analytics.events WHERE tenant_id = {t:String}", {"t": prefix}
    )
    assert stored == [{"n": 5}]


def _event(eid: str, day: int = 0) -> MessageReceived:
    return MessageReceived(
        envelope=envelope(MessageReceived, "p", "c", eid, DAY + timedelta(days=day)),
        message_id="m",
        channel="web_chat",
        text="x",
        original_length=1,
        truncated=False,
    )


def _row(topic: str, partition: int, offset: int, day: int) -> EventRow:
    rec = Record(topic, partition, offset, None, b"", 0)
    return row_for(rec, _event(f"{topic}-{partition}-{offset}", day))


# --- the tenant query guard -----------------------------------------------------------


def test_tenant_queries_see_only_the_tenants_deduplicated_events(
    store: ChdbStore, dataset: list[Applied]
) -> None:
    rows = tenant_query(store, "SELECT DISTINCT tenant_id FROM events", "acme")
    assert rows == [{"tenant_id": "acme"}]
    n = tenant_query(
        store, "SELECT count() AS n FROM events WHERE event_type = 'MessageReceived'", "acme"
    )
    assert n == [{"n": 9}]  # c1..c6, each once although lifecycle copies and redeliveries exist
    ranged = tenant_query(
        store,
        "SELECT count() AS n FROM events WHERE event_type = 'MessageReceived'",
        "acme",
        since=SINCE,
        until=UNTIL,
    )
    assert ranged == [{"n": 8}]
    sql = """
        WITH per AS (SELECT conversation_id, count() AS c FROM events GROUP BY conversation_id)
        SELECT conversation_id, c, rank() OVER (ORDER BY c DESC, conversation_id) AS r FROM per
        WHERE conversation_id IN (SELECT conversation_id FROM events WHERE rating IS NOT NULL)
        UNION ALL SELECT 'total', count(), 0 FROM events
    """
    out = tenant_query(store, sql, "acme")
    assert {r["conversation_id"] for r in out} == {"c1", "c2", "c3", "total"}
    assert tenant_query(store, "SELECT count() AS n FROM events", "nobody") == [{"n": 0}]
    assert tenant_query(store, "-- a comment\n(SELECT 1 AS x);", "acme", max_rows=1) == [{"x": 1}]


REFUSED = [
    "INSERT INTO analytics.events SELECT * FROM events",
    "insert into events values (1)",
    "ALTER TABLE analytics.events DELETE WHERE 1",
    "DELETE FROM analytics.events WHERE 1",
    "DROP TABLE analytics.events",
    "TRUNCATE TABLE analytics.events",
    "CREATE TABLE x (a Int8) ENGINE = Memory",
    "OPTIMIZE TABLE analytics.events FINAL",
    "SYSTEM STOP MERGES",
    "SET readonly = 0",
    "USE analytics",
    "SHOW TABLES FROM analytics",
    "DESCRIBE TABLE events",
    "EXPLAIN SELECT 1",
    "SELECT 1; DROP TABLE analytics.events",
    "SELECT ';'; DROP TABLE analytics.events",
    "/* x */ SELECT 1 ;; SELECT 2",
    "SELECT * FROM analytics.events",
    "SELECT * FROM `analytics.events`",
    "SELECT * FROM `analytics`.`events`",
    "SELECT * FROM analytics.tenant_events(tenant = 'other', since = '2026-01-01', until = '2027-01-01')",
    "SELECT * FROM system.tables",
    "SELECT name FROM INFORMATION_SCHEMA.TABLES",
    "SELECT (SELECT count() FROM system.one)",
    "SELECT 1 FROM events WHERE event_id IN analytics.events",
    "SELECT * FROM tables",
    "SELECT * FROM numbers(10)",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1/', 'LineAsString')",
    "SELECT * FROM executable('x.sh', 'TSV', 'a String')",
    "SELECT * FROM merge('analytics', '.*')",
    "SELECT * FROM remote('127.0.0.1', analytics.events)",
    "SELECT file('/etc/passwd')",
    "SELECT FILE('/etc/passwd')",
    "SELECT * APPLY(file) FROM events",
    "SELECT dictGet('d', 'x', 1)",
    "SELECT joinGet('analytics.j', 'v', 1)",
    "SELECT hasColumnInTable('analytics', 'events', 'x')",
    "SELECT sleep(3)",
    "SELECT AIGenerate('hi')",
    "SELECT * FROM events SETTINGS readonly = 0",
    "SELECT * FROM events INTO OUTFILE '/tmp/x'",
    "SELECT * FROM events FORMAT JSON",
    "SELECT * FROM events WHERE tenant_id = {t:String}",
    "WITH events AS (SELECT * FROM analytics.events) SELECT * FROM events",
    "SELECT * FROM events WHERE tenant_id = 'other'",
    "SELECT * FROM events WHERE e.tenant_id IN ('acme', 'other')",
    "",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_the_guard_refuses_writes_ddl_other_tables_and_other_tenants(
    store: ChdbStore, dataset: list[Applied], sql: str
) -> None:
    before = store.query("SELECT count() AS n FROM analytics.events")
    with pytest.raises(QueryRefused) as refused:
        tenant_query(store, sql, "acme")
    message = str(refused.value)
    assert message.startswith("refused: ") and "\n" not in message
    assert store.query("SELECT count() AS n FROM analytics.events") == before


# --- the command line -----------------------------------------------------------------


def cli(store: ChdbStore, *args: str, opts: str = "") -> Any:
    from typer.testing import CliRunner

    from projections.analytics.cli import analytics_app

    env = {"CASESTREAM_ANALYTICS_PATH": str(store.path)}
    return CliRunner().invoke(analytics_app, [*args, *opts.split()], env=env)


def test_cli_kpis_prints_the_tables(store: ChdbStore, dataset: list[Applied]) -> None:
    done = cli(store, "kpis", opts="--tenant acme --since 2026-03-01 --until 2026-03-02T00:00Z")
    assert done.exit_code == 0, done.output
    assert "deflection_rate" in done.stdout and "40.0%" in done.stdout
    assert "escalation reasons" in done.stdout and "customer_frustrated" in done.stdout
    as_json = cli(store, "kpis", opts="--tenant acme --since 2026-03-01 --until 2026-03-02 --json")
    assert '"messages": 8' in as_json.stdout


def test_cli_query_answers_and_refuses_in_one_line_with_exit_code_2(
    store: ChdbStore, dataset: list[Applied]
) -> None:
    sql = "SELECT count() AS n FROM events WHERE event_type = 'DecisionMade'"
    done = cli(store, "query", sql, opts="--tenant other --json")
    assert done.exit_code == 0 and done.stdout.strip() == '{"n": 2}'
    for sql in (
        "DROP TABLE analytics.events",
        "SELECT 1; SELECT 2",
        "SELECT * FROM system.tables",
        "SELECT * FROM analytics.events",
    ):
        refused = cli(store, "query", sql, "--tenant", "acme")
        assert refused.exit_code == 2
        assert refused.stderr.startswith("refused: ") and refused.stderr.count("\n") == 1
        assert "Traceback" not in refused.output
    failed = cli(store, "query", "SELECT no_such_column FROM events", "--tenant", "acme")
    assert failed.exit_code == 1 and failed.stderr.startswith("query failed: ")
    bad = cli(store, "kpis", opts="--tenant acme --since yesterday")
    assert bad.exit_code == 2 and "ISO 8601" in bad.stderr


def test_cli_says_so_when_another_process_holds_the_store(store: ChdbStore) -> None:
    import os
    import subprocess
    import sys

    code = "from projections.analytics.cli import analytics_app; analytics_app()"
    env = {**os.environ, "CASESTREAM_ANALYTICS_PATH": str(store.path)}
    done = subprocess.run(
        [sys.executable, "-c", code, "query", "SELECT 1", "--tenant", "acme"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "in use by another process" in done.stderr and "Traceback" not in done.stderr


def test_kpis_and_tenant_queries_agree_across_adapters(
    store: ChdbStore, http_store: ClickHouseConnectStore, dataset: list[Applied]
) -> None:
    # The fake serves the module's chdb path: the same rows, read through each adapter.
    assert kpis(http_store, cost_per_call=0.01) == kpis(store, cost_per_call=0.01)
    assert http_store.positions() == store.positions()
    sql = "SELECT conversation_id, count() AS n FROM events GROUP BY 1 ORDER BY 1"
    assert tenant_query(http_store, sql, "acme") == tenant_query(store, sql, "acme")
    with pytest.raises(QueryRefused):
        tenant_query(http_store, "SELECT * FROM system.tables", "acme")
