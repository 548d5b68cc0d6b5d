"""The session-state projection on a REAL Kafka broker, worker and redis-server.

The demo conversations go through a real ``casestream worker``; the projection folds the
topics into Redis hashes under keys that contain the test's own topic prefix, so tests
never share keys or topics. Waits are bounded polls; nothing sleeps to assert.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from connectors.webchat import create_app
from events.base import Event, caused_envelope, derive_event_id, origin_envelope
from events.conversation import ConversationClosed, ConversationStarted, MessageReceived
from events.decisions import DecisionMade, ReplyRequested
from events.delivery import ReplyDelivered
from processors.conversation import case_id_for
from projections.cli import follow
from projections.runner import Applied
from projections.session import SessionProjection
from projections.session_api import decode_state
from replay.demo import START, scenario_records
from replay.driver import LogDriver
from streams import services
from streams.bootstrap import build_steps
from streams.kafka import EventPublisher, create_topics, read_topic
from streams.settings import Settings
from streams.steps import Record
from streams.topics import Topics
from tests.support import REPO, WorkerProcess, settings_env, unique_settings, wait_for

pytestmark = pytest.mark.integration

PASSWORD, API = "demo-0-simple-password-reset", "demo-1-api-troubleshooting"
ANGRY, SWITCH, SQL = (
    "demo-2-angry-customer",
    "demo-3-context-switch",
    "demo-4-sql-injection-as-text",
)
TTL_S = 3600
MESSAGES = "messages"  # not a topic: customer messages published
QUIET_S = 3.0
Snapshot = dict[str, dict[str, str]]


# --- helpers -------------------------------------------------------------------------


def new_settings(kafka_bootstrap: str, redis_url: str, **overrides: Any) -> Settings:
    settings = unique_settings(
        kafka_bootstrap, redis_url=redis_url, session_ttl_s=TTL_S, **overrides
    )
    create_topics(settings)
    return settings


def read_topics(settings: Settings) -> list[str]:
    t = Topics(settings.topic_prefix)
    return [t.inbound, t.enriched, t.decisions, t.cases, t.deliveries]


def end_offsets(settings: Settings) -> dict[str, int]:
    """``topic:partition`` -> high watermark, for every partition holding records."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "offsets"})
    try:
        out = {}
        for topic in read_topics(settings):
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high:
                    out[f"{topic}:{p}"] = high
        return out
    finally:
        consumer.close()


def topic_sizes(settings: Settings) -> Counter[str]:
    sizes: Counter[str] = Counter()
    for field, high in end_offsets(settings).items():
        sizes[field.rpartition(":")[0]] += high
    return sizes


def demo_inbound(settings: Settings, tenants: Iterable[str]) -> list[Record]:
    """Every tenant's demo messages, with a ConversationStarted before the password reset
    and a ConversationClosed after the SQL-injection text."""
    steps = build_steps(settings)
    records: list[Record] = []
    for tenant in tenants:
        started = ConversationStarted(
            envelope=lifecycle(ConversationStarted, tenant, PASSWORD, -1),
            channel="web_chat",
            locale="en-GB",
        )
        closed = ConversationClosed(
            envelope=lifecycle(ConversationClosed, tenant, SQL, 300),
            reason="customer_left",
            resolved=False,
        )
        records.append(record_of(steps.output(started)))
        records.extend(scenario_records(steps, tenant))
        records.append(record_of(steps.output(closed)))
    return records


def lifecycle(kind: type[Event], tenant: str, conversation: str, seconds: int) -> Any:
    return origin_envelope(
        kind,
        tenant_id=tenant,
        conversation_id=conversation,
        producer="test",
        producer_version="0",
        event_id=derive_event_id(f"{tenant}/{conversation}", kind.event_type()),
        occurred_at=START + timedelta(seconds=seconds),
    )


def record_of(out: Any) -> Record:
    return Record(out.topic, 0, 0, out.key, out.value, 0)


def publish(settings: Settings, inbound: list[Record]) -> Counter[str]:
    """Publish ``inbound`` and one ReplyDelivered per first reply; return what the test
    wrote per topic, plus ``MESSAGES``: how many customer messages the worker must decide.

    What the worker writes beyond that is not predicted: with the act stage beside decide,
    a workflow's result may be decided before or after the conversation's next message (the
    log driver, which acts inline, always sees it first), and a decision may differ."""
    steps = build_steps(settings)
    publisher = EventPublisher(settings)
    expected: Counter[str] = Counter()
    for record in inbound:
        event = steps.codec.decode(record.value)
        publisher.publish(event)
        expected[steps.topics.inbound] += 1
        expected[MESSAGES] += isinstance(event, MessageReceived)
    for out in LogDriver(steps).run(inbound):
        event = out.event
        if isinstance(event, ReplyRequested) and event.message_id.endswith("-m0"):
            publisher.publish(delivered(event))
            expected[steps.topics.deliveries] += 1
    publisher.flush()
    return expected


def delivered(reply: ReplyRequested) -> ReplyDelivered:
    return ReplyDelivered(
        envelope=caused_envelope(
            reply.envelope, ReplyDelivered, producer="test", producer_version="0"
        ),
        reply_id=reply.reply_id,
        channel=reply.channel,
        status="delivered",
    )


def wait_for_log(settings: Settings, expected: Counter[str], worker: WorkerProcess) -> None:
    """Until the test's own records are on the log, every message has a decision record,
    and the worker has written nothing for ``QUIET_S`` (its action results come late)."""
    topics = Topics(settings.topic_prefix)
    wanted = {t: n for t, n in expected.items() if t in read_topics(settings)}
    wanted[topics.decisions] = max(wanted.get(topics.decisions, 0), expected[MESSAGES])
    last: dict[str, Any] = {"sizes": None, "since": 0.0}

    def done() -> bool:
        sizes = topic_sizes(settings)
        if not all(sizes[t] >= n for t, n in wanted.items()):
            return False
        if sizes != last["sizes"]:
            last["sizes"], last["since"] = sizes, time.monotonic()
        return time.monotonic() - last["since"] >= QUIET_S

    wait_for(done, 120, f"the worker's outputs {wanted}\n{worker.log_tail()}", every=0.25)


def snapshot(client: redis.Redis, settings: Settings) -> Snapshot:
    keys = SessionProjection(client, settings).keys
    return {
        str(k): {str(f): str(v) for f, v in client.hgetall(k).items()}
        for k in client.scan_iter(match=keys.scan_pattern(), count=1000)
        if keys.kind(str(k)) == "state"
    }


def log_events(settings: Settings) -> list[Applied]:
    steps = build_steps(settings)
    return [
        Applied(r, steps.codec.decode(r.value))
        for topic in read_topics(settings)
        for r in read_topic(settings, topic, idle_timeout=1.0)
    ]


def distinct_events(settings: Settings) -> dict[tuple[str, str], int]:
    """Distinct events per conversation, each counted on its home topic only."""
    topics = Topics(settings.topic_prefix)
    seen: dict[tuple[str, str], set[str]] = {}
    for item in log_events(settings):
        env = item.event.envelope
        if topics.for_event(item.event) == item.record.topic:
            seen.setdefault((env.tenant_id, env.conversation_id), set()).add(env.event_id)
    return {k: len(v) for k, v in seen.items()}


def last_decision(settings: Settings, conversation: str) -> tuple[str, str]:
    """(action, reason) of the conversation's last DecisionMade on the decisions topic."""
    topic = Topics(settings.topic_prefix).decisions
    decisions = [
        item.event
        for item in log_events(settings)
        if item.record.topic == topic
        and isinstance(item.event, DecisionMade)
        and item.event.envelope.conversation_id == conversation
    ]
    assert decisions, f"no decisions for {conversation}"
    return decisions[-1].action, decisions[-1].reason


def rebuild(settings: Settings) -> tuple[SessionProjection, Snapshot]:
    projection = SessionProjection.from_settings(settings)
    projection.wipe()
    stats, restarts = follow(settings, projection, until_caught_up=True)
    assert restarts == 0 and stats.undecodable == 0
    return projection, snapshot(projection.redis, settings)


def retries() -> float:
    labels = {"projection": "session"}
    return REGISTRY.get_sample_value("casestream_projection_retries_total", labels) or 0.0


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="module")
def demo_log(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The demo conversations (tenant ``demo``) through a real worker, which is then stopped."""
    settings = new_settings(kafka_bootstrap, redis_url)
    worker = WorkerProcess(settings, tmp_path_factory.mktemp("demo") / "worker.log").start()
    try:
        wait_for_log(settings, publish(settings, demo_inbound(settings, ["demo"])), worker)
    finally:
        worker.stop()
    yield settings
    SessionProjection.from_settings(settings).wipe()


# --- tests ---------------------------------------------------------------------------


def test_demo_conversations_fold_into_session_hashes(
    demo_log: Settings, rclient: redis.Redis
) -> None:
    settings = demo_log
    projection, _ = rebuild(settings)
    states = {
        (s["tenant_id"], s["conversation_id"]): s
        for s in (decode_state(raw) for raw in snapshot(rclient, settings).values())
    }
    assert len(states) == 5

    angry = states[("demo", ANGRY)]
    assert angry["status"] == "escalated" and angry["escalated"] is True
    assert angry["case_id"] == case_id_for("demo", ANGRY)
    assert angry["escalation_reason"] == "explicit_human_request"
    assert (angry["last_action"], angry["turn_count"]) == ("escalate", 3)
    assert angry["last_event_type"] == "CaseEscalated"

    password = states[("demo", PASSWORD)]
    assert password["status"] == "open" and password["turn_count"] == 3
    assert (password["channel"], password["locale"]) == ("web_chat", "en-GB")
    assert (password["last_intent"], password["last_intent_confidence"]) == (
        "ACCOUNT/Password",
        pytest.approx(0.8, abs=0.01),
    )
    # a field fed by one topic follows that topic's order: the last DecisionMade on the
    # decisions topic (with the act stage running beside decide, a workflow's result can be
    # decided after a later message, so this is read from the log, not assumed)
    assert (password["last_action"], password["last_action_reason"]) == last_decision(
        settings, PASSWORD
    )
    assert password["replies_delivered"] == 1 and password["last_delivery_status"] == "delivered"

    switch = states[("demo", SWITCH)]
    assert switch["intent_history"] == ["DATA/Export", "ACCOUNT/Password", "DATA/Export"]
    assert switch["context_stack"] == ["DATA/Export"] and switch["current_topic"] == "DATA/Export"

    sql = states[("demo", SQL)]
    assert sql["status"] == "closed" and sql["closed"] is True and sql["resolved"] is False
    assert sql["close_reason"] == "customer_left" and sql["last_event_type"] == "ConversationClosed"
    assert sql["sentiment_label"] == "negative" and sql["last_intent"] is None
    for key in (projection.keys.conversation("demo", SQL), projection.keys.seen("demo", SQL)):
        assert 0 < rclient.ttl(key) <= TTL_S
    assert rclient.ttl(projection.keys.conversation("demo", API)) == -1
    api = states[("demo", API)]
    assert (api["last_action"], api["last_action_reason"]) == last_decision(settings, API)

    # Nothing lost, nothing twice: each conversation counts its distinct events (the
    # enrich stage's copies of lifecycle events on the enriched topic are not new events).
    assert {k: s["event_count"] for k, s in states.items()} == distinct_events(settings)
    assert projection.counts["ignored"] == 2  # ConversationStarted + Closed, passed through
    positions = {f"{t}:{p}": n for (t, p), n in projection.positions().items()}
    assert positions == end_offsets(settings)


def test_replays_and_redelivered_events_change_nothing(
    demo_log: Settings, rclient: redis.Redis
) -> None:
    settings = demo_log
    projection, before = rebuild(settings)
    positions = projection.positions()
    log = log_events(settings)

    # The same batch twice: every record is at or below the stored positions.
    projection.apply(log)
    projection.apply(log)
    assert projection.last["stale"] == len(log) and projection.last["applied"] == 0
    assert snapshot(rclient, settings) == before

    # Positions (and the recent-id lists) wiped, data kept: a replay from offset 0 is all
    # duplicates, told by the offsets each conversation took from each partition.
    rclient.delete(projection.keys.positions)
    for key in rclient.scan_iter(match=projection.keys.scan_pattern()):
        if projection.keys.kind(str(key)) == "seen":
            rclient.delete(key)
    again = SessionProjection.from_settings(settings)
    follow(settings, again, until_caught_up=True)
    assert again.counts["applied"] == 0 and again.counts["duplicate"] > 0
    assert snapshot(rclient, settings) == before
    assert again.positions() == positions

    # A rebuild restores the recent ids; then the same events again at new offsets (a
    # producer retry, a worker re-run) are caught by them.
    again.wipe()
    follow(settings, again, until_caught_up=True)
    assert snapshot(rclient, settings) == before
    decision = next(a.event for a in log if isinstance(a.event, DecisionMade))
    closed = next(a.event for a in log if isinstance(a.event, ConversationClosed))
    publisher = EventPublisher(settings)
    publisher.publish(decision)
    publisher.publish(closed)
    publisher.flush()
    follow(settings, again, until_caught_up=True)
    assert again.last == {"applied": 0, "duplicate": 2, "stale": 0, "ignored": 0}
    assert snapshot(rclient, settings) == before
    assert again.positions() != positions

    # Another interleaving of the topics (one batch, topics in reverse order) into an
    # empty store gives the same hashes: fields do not depend on the interleaving.
    again.wipe()
    by_topic = sorted(
        log_events(settings), key=lambda a: read_topics(settings)[::-1].index(a.record.topic)
    )
    again.apply(by_topic)
    assert snapshot(rclient, settings) == before


def test_redis_down_mid_stream_loses_nothing_and_counts_nothing_twice(
    kafka_bootstrap: str, redis_url: str, rclient: redis.Redis, tmp_path: Path
) -> None:
    settings = new_settings(kafka_bootstrap, redis_url)
    tenants = [f"tenant-{i:02d}" for i in range(24)]
    waves = [tenants[0:8], tenants[8:16], tenants[16:24]]
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    projection = SessionProjection.from_settings(settings)
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["stats"], outcome["restarts"] = follow(settings, projection, stop=stop)
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    retries_before = retries()
    expected: Counter[str] = Counter()
    try:
        thread.start()
        expected += publish(settings, demo_inbound(settings, waves[0]))
        wait_for(lambda: projection.counts["applied"] > 0, 90, f"first events\n{worker.log_tail()}")
        services.redis_down()  # while the worker is still writing wave 0
        expected += publish(settings, demo_inbound(settings, waves[1]))
        wait_for_log(settings, expected, worker)  # the worker goes on while Redis is down
        wait_for(lambda: retries() >= retries_before + 3, 60, "the runner retrying")
        assert services.redis_up() == redis_url
        expected += publish(settings, demo_inbound(settings, waves[2]))
        wait_for_log(settings, expected, worker)
        # the worker's last action results can come after a quiet spell (a loaded CI
        # machine): stop it, so the live projection is compared on the whole log
        worker.stop()
        ends = end_offsets(settings)
        wait_for(
            lambda: (
                rclient.hgetall(projection.keys.positions) == {k: str(v) for k, v in ends.items()}
            ),
            120,
            f"the projection to catch up: {outcome}",
            every=0.25,
        )
    finally:
        stop.set()
        thread.join(30)
        worker.stop()
        services.redis_up()  # idempotent: never leave the session without its Redis
    assert "error" not in outcome, outcome
    live = snapshot(rclient, settings)
    assert len(live) == 5 * len(tenants)
    _, rebuilt = rebuild(settings)
    assert live == rebuilt
    # The local redis-server keeps nothing across a restart: the projection noticed that
    # the store went back, and replayed from its (then empty) positions.
    assert outcome["restarts"] >= 1
    counts = {(s["tenant_id"], s["conversation_id"]): int(s["event_count"]) for s in live.values()}
    assert counts == distinct_events(settings)
    for tenant in tenants:
        angry = decode_state(live[projection.keys.conversation(tenant, ANGRY)])
        assert angry["status"] == "escalated" and angry["case_id"] == case_id_for(tenant, ANGRY)
    projection.wipe()


def test_cli_rebuild_prints_counts_and_run_stops_on_ctrl_c(
    demo_log: Settings, rclient: redis.Redis
) -> None:
    settings = demo_log
    env = settings_env(settings)
    env.update(CASESTREAM_REDIS_URL=settings.redis_url, CASESTREAM_SESSION_TTL_S=str(TTL_S))
    cli = [sys.executable, "-c", "from projections.cli import projections_app; projections_app()"]
    done = subprocess.run(
        [*cli, "rebuild", "session"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.splitlines()[-1])
    assert counts["conversations"] == 5 and counts["restarts"] == 0
    assert (counts["status_escalated"], counts["status_closed"], counts["status_open"]) == (1, 1, 3)
    rebuilt = snapshot(rclient, settings)
    positions = SessionProjection(rclient, settings).keys.positions

    rclient.delete(positions)  # `run` replays from 0: all duplicates, same hashes
    run = subprocess.Popen(
        [*cli, "run", "session", "--every", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ends = {k: str(v) for k, v in end_offsets(settings).items()}
        wait_for(lambda: rclient.hgetall(positions) == ends, 60, "`run` to catch up")
        run.send_signal(signal.SIGINT)
        out, _ = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out[-3000:]
    assert "session: applied" in out and "session: stopped" in out
    assert snapshot(rclient, settings) == rebuilt


KEY_A, TENANT_A, KEY_B, TENANT_B = "key-a", "tenant-a", "key-b", "tenant-b"


def test_state_endpoint_serves_own_tenant_only_and_503_without_redis(
    kafka_bootstrap: str, redis_url: str
) -> None:
    settings = new_settings(
        kafka_bootstrap, redis_url, api_keys={KEY_A: TENANT_A, KEY_B: TENANT_B}, partitions=2
    )
    a, b = {"X-API-Key": KEY_A}, {"X-API-Key": KEY_B}
    with TestClient(create_app(settings)) as client:
        created = client.post("/v1/conversations", json={"locale": "en"}, headers=a)
        assert created.status_code == 201, created.text
        conversation = created.json()["conversation_id"]
        sent = client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"text": "I forgot my password"},
            headers=a,
        )
        assert sent.status_code == 202, sent.text
        projection = SessionProjection.from_settings(settings)
        try:
            follow(settings, projection, until_caught_up=True)
            url = f"/v1/conversations/{conversation}/state"
            own = client.get(url, headers=a)
            assert own.status_code == 200, own.text
            state = own.json()
            assert (state["tenant_id"], state["conversation_id"]) == (TENANT_A, conversation)
            assert (state["status"], state["turn_count"], state["event_count"]) == ("open", 1, 2)
            assert state["channel"] == "web_chat" and state["escalated"] is False
            assert not any(name.startswith("_") for name in state)

            other = client.get(url, headers=b)
            assert other.status_code == 404
            assert other.json()["error"] == "unknown_conversation"
            unknown = client.get(f"/v1/conversations/{uuid.uuid4()}/state", headers=a)
            assert unknown.status_code == 404
            assert unknown.json()["error"] == "unknown_conversation"
            assert client.get(url).status_code == 401
            assert (
                "/v1/conversations/{conversation_id}/state"
                in client.get("/openapi.json").json()["paths"]
            )
        finally:
            projection.wipe()
            projection.close()

    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    with TestClient(create_app(nowhere)) as client:
        down = client.get(f"/v1/conversations/{conversation}/state", headers=a)
        assert down.status_code == 503
        assert down.json()["error"] == "state_unavailable"
        assert client.get("/healthz").status_code == 200
        assert client.post("/v1/conversations", json={}, headers=a).status_code == 201
