"""Analytics benchmark: Kafka -> chdb ingest, dashboard query latency, Redis session fold.

Prints progress to stderr and ends with one JSON line on stdout:
  events, produce_msgs_per_s, ingest_rows_per_s, dashboard_p95_ms, dashboard_p95_ms_10m,
  redis_updates_per_s (plus details: generation rate, per-query p95s, parts, tenant...)

Phases (one run, local broker, fresh topic prefix and fresh stores):
  1. generate N Kafka records (fixed seed) of conversation traffic over several tenants
     (skewed sizes) and many conversations, in time order over --days days: per turn
     MessageReceived -> MessageEnriched -> DecisionMade -> ReplyRequested (reply, clarify,
     acknowledgement) or CaseEscalated + a handover ReplyRequested; then ConversationClosed
     and, for some, FeedbackReceived. Ids come from ``events.base`` (derive_event_id from
     the seed), lifecycle events also get the enrich stage's pass-through copy on the
     enriched topic (as in the real log; N counts records, copies included). Events are
     Avro-encoded first (timed: gen_encode_msgs_per_s), then produced with large librdkafka
     batches (timed to the last delivery: produce_msgs_per_s).
  2. ingest: ``run_projection(AnalyticsProjection, until_caught_up=True)`` into a fresh
     chdb store, wall time from the call to its return: ingest_rows_per_s = applied / s.
  3. dashboard: for the largest tenant over the data's whole time range widened to whole
     UTC hours (what the page asks for), one page load = what the page runs:
     ``compute_kpis`` (6 queries, sentiment_hourly among them) + the hourly message
     count (``messages_hourly``); over the rollups (``rollups.sql``), since the range is
     whole hours. One unmeasured warm-up, then 20 runs; p95 (nearest rank) of the page
     load is dashboard_p95_ms, per part in *_by_query. Measured right after ingest:
     the raw table has whatever parts the inserts left; the rollups were compacted
     (``OPTIMIZE ... FINAL`` of the three small rollup tables) by the projection's
     ``idle()`` when the run caught up, as a live projection does when idle.
  4. the same over --dashboard-rows rows generated inside a second fresh chdb store by
     ``INSERT INTO analytics.events_new SELECT ... FROM numbers(R)`` (the view chain
     fills the raw table, the event-id index and the rollups), then the same rollup
     compaction (timed: dashboard_rows_compact_s) (columns derived from
     ``cityHash64(seed, ...)``: 14-row conversations of 3 turns, same tenant skew, time
     span and type mix as phase 1, a ~300-byte JSON payload), in blocks of 1M rows.
  5. ``run_projection(SessionProjection)`` over the same topics into Redis (started if
     needed, stopped at the end if this run started it): redis_updates_per_s = events
     applied to conversation hashes / s (records_per_s counts ignored pass-through too).

Usage: python bench/analytics.py [--events N] [--dashboard-rows R] [--seed S]
       python bench/analytics.py --dashboard-only [--dashboard-rows R] [--dashboard-path DIR]
         (phase 4 alone: no Kafka, no Redis; DIR keeps the generated store for reruns)
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events.base import Event, caused_envelope, derive_event_id, origin_envelope
from events.codec import AvroCodec
from events.conversation import ConversationClosed, FeedbackReceived, MessageReceived
from events.decisions import CaseEscalated, DecisionMade, ReplyRequested
from events.enrichment import IntentScore, MessageEnriched, ModelInfo, Sentiment
from processors.taxonomy import all_intent_labels
from projections.analytics.dashboard import whole_hours_around
from projections.analytics.kpis import KpiParams, compute_kpis, kpi_params
from projections.analytics.projection import AnalyticsProjection
from projections.analytics.sql import EVENTS_TABLE, kpi_queries
from projections.analytics.store import AnalyticsStore, compact_rollups, open_store
from projections.runner import run_projection
from streams import services
from streams.kafka import EventPublisher, create_topics
from streams.settings import Settings
from streams.steps import Output
from streams.topics import PASS_THROUGH, Topics
from tests.factories import SAMPLE_TEXTS
from tests.support import unique_settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"]
WEIGHTS = [0.30, 0.20, 0.15, 0.10, 0.09, 0.07, 0.05, 0.04]
CHANNELS = ["web_chat", "web_chat", "web_chat", "email", "whatsapp", "sms"]
INTENTS = [x for x in all_intent_labels() if "/" in x]
MODELS = [
    ModelInfo(name="baseline-lexical", version="1", sha256="0" * 64),
    ModelInfo(name="onnx-distilbert", version="3", sha256="1" * 64),
]
RUNS = 20


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- phase 1: traffic -------------------------------------------------------------------


def conversation(rng: random.Random, seed: int, n: int, start: datetime) -> list[Event]:
    """The events of conversation ``n`` (in causal order, times non-decreasing)."""
    tenant = rng.choices(TENANTS, WEIGHTS)[0]
    conv = f"c{seed}-{n:08d}"
    channel = rng.choice(CHANNELS)
    model = MODELS[0] if rng.random() < 0.85 else MODELS[1]
    out: list[Event] = []
    t = start
    escalated = False
    turns = rng.choices([1, 2, 3, 4, 5, 6], [15, 25, 25, 15, 12, 8])[0]
    for turn in range(turns):
        text = rng.choice(SAMPLE_TEXTS)
        recv = MessageReceived(
            envelope=origin_envelope(
                MessageReceived,
                tenant_id=tenant,
                conversation_id=conv,
                producer="webchat-connector",
                producer_version="1.0.0",
                event_id=derive_event_id(f"{seed}/{tenant}/{conv}", "MessageReceived", turn),
                occurred_at=t,
            ),
            message_id=f"{conv}-m{turn}",
            channel=channel,
            text=text,
            original_length=len(text),
            truncated=False,
        )
        label = rng.choices(["negative", "neutral", "positive"], [25, 55, 20])[0]
        frustration = round(rng.betavariate(2, 5 if label != "negative" else 2), 4)
        valence = round({"negative": -0.6, "neutral": 0.0, "positive": 0.6}[label]
                        + rng.uniform(-0.3, 0.3), 4)  # fmt: skip
        picks = rng.sample(INTENTS, 3)
        top = round(rng.uniform(0.35, 0.98), 4)
        scores = (top, round(top * rng.uniform(0.2, 0.9), 4), round(top * 0.15, 4))
        enr = MessageEnriched(
            envelope=caused_envelope(
                recv.envelope, MessageEnriched, producer="enrich", producer_version="1.0.0"
            ),
            message_id=recv.message_id,
            channel=channel,
            text=text,
            language="en",
            intents=tuple(
                IntentScore(label=lb, score=s) for lb, s in zip(picks, scores, strict=True)
            ),
            sentiment=Sentiment(label=label, valence=valence, frustration=frustration),
            model=model,
        )
        roll = rng.random()
        if frustration >= 0.75 or roll < 0.06:
            action, reason = "escalate", rng.choice(["frustration", "human_request", "risk"])
        elif scores[0] - scores[1] < 0.15 or roll < 0.16:
            action, reason = "clarify", "ambiguous_intent"
        else:
            action, reason = "reply", "confident"
        dec = DecisionMade(
            envelope=caused_envelope(
                enr.envelope, DecisionMade, producer="decide", producer_version="1.0.0"
            ),
            message_id=recv.message_id,
            action=action,
            reason=reason,
            confidence=top,
            threshold=0.6,
            sentiment_label=label,
            frustration=frustration,
            turn=turn,
            policy_version="2026.1",
            model=model,
            intent=picks[0],
        )
        out += [recv, enr, dec]
        if action == "escalate":
            env = caused_envelope(
                dec.envelope, CaseEscalated, producer="decide", producer_version="1.0.0"
            )
            out.append(
                CaseEscalated(
                    envelope=env,
                    case_id=f"case-{env.event_id[:12]}",
                    message_id=recv.message_id,
                    reason=reason,
                    priority="urgent"
                    if frustration >= 0.9
                    else "high"
                    if frustration >= 0.5
                    else "medium",
                    summary=f"{picks[0]}: {text}",
                    confidence=top,
                    sentiment_trajectory=(valence,),
                    transcript_ref=f"kafka://{conv}",
                    intent=picks[0],
                )
            )
        kind = {"reply": "answer", "clarify": "clarification", "escalate": "handover"}[action]
        env = caused_envelope(
            dec.envelope, ReplyRequested, producer="decide", producer_version="1.0.0"
        )
        out.append(
            ReplyRequested(
                envelope=env,
                reply_id=env.event_id,
                message_id=recv.message_id,
                channel=channel,
                text=f"[{kind}] {picks[0]}",
                kind=kind,
            )
        )
        if action == "escalate":
            escalated = True
            break
        t += timedelta(milliseconds=rng.randint(20_000, 600_000))
    key = f"{seed}/{tenant}/{conv}"
    resolved = not escalated and rng.random() < 0.85
    out.append(
        ConversationClosed(
            envelope=origin_envelope(
                ConversationClosed,
                tenant_id=tenant,
                conversation_id=conv,
                producer="webchat-connector",
                producer_version="1.0.0",
                event_id=derive_event_id(key, "ConversationClosed"),
                occurred_at=t + timedelta(seconds=rng.randint(30, 900)),
            ),
            reason="handed_over" if escalated else rng.choice(["customer_left", "idle_timeout"]),
            resolved=resolved,
        )
    )
    if rng.random() < 0.3:
        out.append(
            FeedbackReceived(
                envelope=origin_envelope(
                    FeedbackReceived,
                    tenant_id=tenant,
                    conversation_id=conv,
                    producer="webchat-connector",
                    producer_version="1.0.0",
                    event_id=derive_event_id(key, "FeedbackReceived"),
                    occurred_at=t + timedelta(seconds=rng.randint(901, 1800)),
                ),
                rating=rng.choices([1, 2, 3, 4, 5], [8, 7, 15, 30, 40])[0]
                if resolved
                else rng.choices([1, 2, 3, 4, 5], [35, 25, 20, 12, 8])[0],
            )
        )
    return out


def traffic(seed: int, n_records: int, days: float) -> Iterator[Event]:
    """Endless time-ordered stream of many interleaved conversations, starting as a
    Poisson process whose rate spreads ``n_records`` (~13 a conversation) over ``days``."""
    rng = random.Random(seed)
    per_s = n_records / 13 / (days * 86400)  # conversation starts per second of event time
    heap: list[tuple[datetime, int, int, list[Event]]] = []
    n = 0
    next_start = 0.0
    while True:
        top = heap[0][0] if heap else None
        start = T0 + timedelta(milliseconds=int(next_start * 1000))
        if top is None or start <= top:
            events = conversation(rng, seed, n, start)
            heapq.heappush(heap, (events[0].envelope.occurred_at, n, 0, events))
            n += 1
            next_start += rng.expovariate(per_s)
            continue
        _, conv, i, events = heapq.heappop(heap)
        yield events[i]
        if i + 1 < len(events):
            heapq.heappush(heap, (events[i + 1].envelope.occurred_at, conv, i + 1, events))


def generate(settings: Settings, n: int, seed: int, days: float) -> list[Output]:
    codec = AvroCodec()
    topics = Topics(settings.topic_prefix)
    out: list[Output] = []
    report = 100_000
    for event in traffic(seed, n, days):
        topic = topics.for_event(event)
        key = event.key.encode()
        out.append(Output(topic, key, codec.encode(event, topic), event))
        if isinstance(event, PASS_THROUGH) and len(out) < n:
            out.append(Output(topics.enriched, key, codec.encode(event, topics.enriched), event))
        if len(out) >= n:
            return out[:n]
        if len(out) >= report:
            log(f"  generated {len(out)}/{n}")
            report += 100_000
    return out


def produce(settings: Settings, records: list[Output]) -> float:
    publisher = EventPublisher(
        settings,
        **{
            "linger.ms": 100,
            "batch.num.messages": 100_000,
            "batch.size": 4 * 1024 * 1024,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1024 * 1024,
        },
    )
    started = time.perf_counter()
    for out in records:
        publisher.send(out)
    publisher.flush(300)
    return len(records) / (time.perf_counter() - started)


# --- phases 3 and 4: dashboard -------------------------------------------------------------


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 2)


def dashboard(store: AnalyticsStore, since: datetime, until: datetime) -> dict[str, Any]:
    tenant = str(
        store.query(
            f"SELECT tenant_id AS t, count() AS n FROM {EVENTS_TABLE} "
            "GROUP BY t ORDER BY n DESC LIMIT 1"
        )[0]["t"]
    )
    params = KpiParams()
    since, until = whole_hours_around(since, until)  # what the page asks for
    values = kpi_params(tenant, since, until, params)
    sql = kpi_queries(since, until)
    queries: dict[str, Callable[[], object]] = {
        "kpis": lambda: compute_kpis(store, tenant, since, until, params),
        "messages_hourly": lambda: store.query(sql["messages_hourly"], values),
    }
    for q in queries.values():  # warm-up, not measured
        q()
    times: dict[str, list[float]] = {name: [] for name in queries}
    times["page"] = []
    for _ in range(RUNS):
        page = 0.0
        for name, q in queries.items():
            t = time.perf_counter()
            q()
            ms = (time.perf_counter() - t) * 1000
            times[name].append(ms)
            page += ms
        times["page"].append(page)
    report = compute_kpis(store, tenant, since, until, params)
    parts = store.query(
        "SELECT count() AS n FROM system.parts WHERE database = 'analytics' "
        "AND table = 'events' AND active"
    )[0]["n"]
    return {
        "p95": p95(times["page"]),
        "by_query": {name: p95(v) for name, v in times.items() if name != "page"},
        "median": round(sorted(times["page"])[len(times["page"]) // 2], 2),
        "tenant": tenant,
        "tenant_messages": report.summary["messages"],
        "tenant_conversations": report.summary["conversations"],
        "active_parts": int(parts),
    }


GENERATED_ROWS = """
INSERT INTO analytics.events_new
WITH
    {seed:UInt64} AS seed,
    intDiv(number, 14) AS conv,
    number % 14 AS pos,
    intDiv(pos, 4) AS turn,
    pos % 4 AS step,
    cityHash64(seed, conv) AS hc,
    cityHash64(seed, conv, turn) AS ht,
    (hc % 100) AS tp,
    multiIf(tp < 30, 'acme', tp < 50, 'globex', tp < 65, 'initech', tp < 75, 'umbrella',
            tp < 84, 'hooli', tp < 91, 'stark', tp < 96, 'wayne', 'wonka') AS tenant,
    ['web_chat', 'web_chat', 'web_chat', 'email', 'whatsapp', 'sms'][hc % 6 + 1] AS chan,
    {intents:Array(String)}[ht % length({intents:Array(String)}) + 1] AS intent_label,
    (ht % 1000) / 1000 AS r,
    multiIf(r < 0.25, 'negative', r < 0.80, 'neutral', 'positive') AS label,
    multiIf(r < 0.06, 'escalate', r < 0.16, 'clarify', 'reply') AS act,
    (bitShiftRight(ht, 10) % 1000) / 1000 AS frus,
    if((bitShiftRight(hc, 20) % 100) < 85, 'baseline-lexical', 'onnx-distilbert') AS model,
    toDateTime64('2026-01-01 00:00:00', 3, 'UTC')
        + toIntervalMillisecond(bitShiftRight(hc, 8) % toUInt64({span_ms:UInt64})
                                + turn * 120000 + step * 300) AS t,
    toString(cityHash64(seed, number)) AS eid,
    concat('c', toString(conv)) AS conv_id,
    concat(conv_id, '-m', toString(turn)) AS msg,
    multiIf(pos = 12, 'ConversationClosed', pos = 13, 'FeedbackReceived',
            step = 0, 'MessageReceived', step = 1, 'MessageEnriched',
            step = 2, 'DecisionMade', act = 'escalate', 'CaseEscalated',
            'ReplyRequested') AS etype
SELECT
    eid, etype, 1, tenant, conv_id, t, eid, '', 'generated',
    if(pos >= 12, '', msg),
    if(etype IN ('MessageReceived', 'MessageEnriched', 'ReplyRequested'), chan, ''),
    if(etype = 'DecisionMade', act, ''),
    multiIf(etype = 'DecisionMade', if(act = 'reply', 'confident', 'ambiguous_intent'),
            etype = 'CaseEscalated', 'frustration',
            etype = 'ConversationClosed', 'customer_left', ''),
    if(etype IN ('MessageEnriched', 'DecisionMade', 'CaseEscalated'), intent_label, ''),
    if(etype IN ('MessageEnriched', 'DecisionMade', 'CaseEscalated'), 0.35 + r * 0.6, NULL),
    if(etype IN ('MessageEnriched', 'DecisionMade'), label, ''),
    if(etype IN ('MessageEnriched', 'DecisionMade'), frus, NULL),
    if(etype = 'MessageEnriched',
       multiIf(label = 'negative', -0.6, label = 'positive', 0.6, 0.0) + frus * 0.3, NULL),
    if(etype = 'FeedbackReceived', toInt16(1 + bitShiftRight(hc, 30) % 5), NULL),
    if(etype = 'ConversationClosed', act != 'escalate' AND bitShiftRight(hc, 40) % 100 < 85, NULL),
    if(etype = 'CaseEscalated', if(frus >= 0.9, 'urgent', if(frus >= 0.5, 'high', 'medium')), ''),
    if(etype = 'CaseEscalated', concat('case-', eid), ''),
    if(etype = 'ReplyRequested', if(act = 'reply', 'answer', 'clarification'), ''),
    '',
    if(etype IN ('MessageEnriched', 'DecisionMade'), model, ''),
    if(etype IN ('MessageEnriched', 'DecisionMade'), '1', ''),
    t + toIntervalMillisecond(step * 40 + (ht % 200)),
    'generated', toUInt32(conv % 4), number,
    concat('{"envelope":{"event_id":"', eid, '","event_type":"', etype,
           '","tenant_id":"', tenant, '","conversation_id":"', conv_id,
           '","occurred_at":"', toString(t), '","producer":"generated"},"message_id":"',
           msg, '","channel":"', chan, '","intent":"', intent_label, '","label":"', label,
           '","text":"', repeat('x', toUInt32(40 + ht % 120)), '"}')
FROM numbers({first:UInt64}, {count:UInt64})
"""


def generate_rows(store: AnalyticsStore, rows: int, seed: int, days: float) -> float:
    started = time.perf_counter()
    block = 1_000_000
    for first in range(0, rows, block):
        store.command(
            GENERATED_ROWS,
            {
                "seed": seed,
                "intents": INTENTS,
                "span_ms": int(days * 86400 * 1000),
                "first": first,
                "count": min(block, rows - first),
            },
        )
        log(f"  generated {min(rows, first + block)}/{rows} rows")
    return time.perf_counter() - started


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="Kafka records")
    parser.add_argument("--dashboard-rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=float, default=30.0, help="event-time span")
    parser.add_argument("--batch-size", type=int, default=20_000, help="run_projection batch")
    parser.add_argument("--batch-ms", type=float, default=200.0, help="run_projection batch time")
    parser.add_argument(
        "--dashboard-only",
        action="store_true",
        help="only phase 4: generate --dashboard-rows rows (fixed seed) and time the page",
    )
    parser.add_argument(
        "--dashboard-path",
        type=Path,
        default=None,
        help="with --dashboard-only: keep the generated store here and reuse it when it "
        "already holds the rows (iterate on the queries without generating again)",
    )
    args = parser.parse_args()
    if args.dashboard_only:
        print(json.dumps(dashboard_only(args)))
        return
    result: dict[str, Any] = {"events": args.events}
    extra: dict[str, Any] = {}
    bootstrap = services.kafka_up()
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmpdir:
        tmp = Path(tmpdir)
        settings = unique_settings(bootstrap, analytics_path=tmp / "chdb-ingest")
        create_topics(settings)

        log(f"generating and encoding {args.events} records (seed {args.seed})")
        t = time.perf_counter()
        records = generate(settings, args.events, args.seed, args.days)
        extra["gen_encode_msgs_per_s"] = round(len(records) / (time.perf_counter() - t), 1)
        types: dict[str, int] = {}
        for r in records:
            types[type(r.event).__name__] = types.get(type(r.event).__name__, 0) + 1
        extra["record_types"] = types
        extra["conversations"] = len({r.key for r in records})
        since = min(r.event.envelope.occurred_at for r in records)
        until = max(r.event.envelope.occurred_at for r in records) + timedelta(seconds=1)
        log(f"  {extra['gen_encode_msgs_per_s']:.0f} rec/s; {extra['conversations']} convs")
        log(f"producing {len(records)} records to prefix {settings.topic_prefix}")
        result["produce_msgs_per_s"] = round(produce(settings, records), 1)
        log(f"  {result['produce_msgs_per_s']:.0f} msg/s")
        del records

        log("ingest: run_projection(AnalyticsProjection, until_caught_up=True)")
        projection = AnalyticsProjection.from_settings(settings)
        try:
            t = time.perf_counter()
            stats = run_projection(
                settings,
                projection,
                until_caught_up=True,
                batch_size=args.batch_size,
                batch_ms=args.batch_ms,
            )
            elapsed = time.perf_counter() - t
            result["ingest_rows_per_s"] = round(stats.applied / elapsed, 1)
            extra["ingest_applied"] = stats.applied
            extra["ingest_undecodable"] = stats.undecodable
            extra["ingest_s"] = round(elapsed, 1)
            extra["stored"] = projection.summary()
            log(f"  {stats.applied} rows in {elapsed:.1f}s; store holds {extra['stored']}")
            log("dashboard over the ingested events")
            dash = dashboard(projection.store, since, until)
        finally:
            projection.close()
        result["dashboard_p95_ms"] = dash.pop("p95")
        extra["dashboard"] = dash
        log(f"  p95 {result['dashboard_p95_ms']} ms {dash}")

        if args.dashboard_rows > 0:  # 0 = skip the generated store
            dash = generated_dashboard(tmp / "chdb-10m", args.dashboard_rows, args.seed, args.days)
            result["dashboard_p95_ms_10m"] = dash.pop("p95")
            extra["dashboard_10m"] = dash
            log(f"  {args.dashboard_rows} rows; p95 {result['dashboard_p95_ms_10m']} ms")

        result["redis_updates_per_s"] = redis_phase(settings, extra)
    print(json.dumps({**result, **extra}))


def generated_dashboard(path: Path, rows: int, seed: int, days: float) -> dict[str, Any]:
    """Phase 4: ``rows`` generated rows in the store at ``path`` (generated unless it
    already holds them), the rollups compacted, then the page timed."""
    extra: dict[str, Any] = {}
    big = open_store(Settings(analytics_path=path))
    try:
        held = int(big.query(f"SELECT count() AS n FROM {EVENTS_TABLE}")[0]["n"])
        if held != rows:
            if held:
                raise SystemExit(f"{path} holds {held} rows, not {rows}: use a fresh path")
            log(f"generating {rows} rows in {path} (INSERT ... SELECT)")
            gen_s = generate_rows(big, rows, seed, days)
            extra["dashboard_rows_insert_s"] = round(gen_s, 1)
        else:
            log(f"reusing the {rows} rows in {path}")
        t = time.perf_counter()
        compact_rollups(big)  # what the projection does when idle (see projection.idle)
        extra["dashboard_rows_compact_s"] = round(time.perf_counter() - t, 1)
        end = T0 + timedelta(days=days, hours=1)
        dash = dashboard(big, T0, end)
    finally:
        big.close()
    return {"p95": dash.pop("p95"), "rows": rows, **extra, **dash}


def dashboard_only(args: argparse.Namespace) -> dict[str, Any]:
    """``--dashboard-only``: no Kafka, no Redis; phase 4 alone."""
    if args.dashboard_path is not None:
        dash = generated_dashboard(args.dashboard_path, args.dashboard_rows, args.seed, args.days)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-analytics-") as tmpdir:
            dash = generated_dashboard(
                Path(tmpdir) / "chdb-10m", args.dashboard_rows, args.seed, args.days
            )
    p95_ms = dash.pop("p95")
    log(f"  {args.dashboard_rows} rows; p95 {p95_ms} ms {dash}")
    return {"dashboard_p95_ms_10m": p95_ms, "dashboard_10m": dash}


def redis_phase(settings: Settings, extra: dict[str, Any]) -> float | None:
    from projections.session import SessionProjection

    if not services.redis_available():
        log("redis-server is not installed: skipping the session phase")
        return None
    was_up = services.redis_ping(services.redis_port())
    url = services.redis_up()
    projection = SessionProjection.from_settings(settings.model_copy(update={"redis_url": url}))
    try:
        log("session: run_projection(SessionProjection, until_caught_up=True)")
        t = time.perf_counter()
        stats = run_projection(settings, projection, until_caught_up=True)
        elapsed = time.perf_counter() - t
        extra["redis_counts"] = dict(projection.counts)
        extra["redis_records_per_s"] = round(stats.applied / elapsed, 1)
        rate = round(projection.counts["applied"] / elapsed, 1)
        log(f"  {projection.counts} in {elapsed:.1f}s: {rate:.0f} updates/s")
        if was_up:
            projection.wipe()
    finally:
        projection.close()
        if not was_up:
            services.redis_down()
    return rate


if __name__ == "__main__":
    main()
