"""Backbone benchmark: the live driver (Faust worker) on the local Kafka broker.

Prints progress to stderr and ends with one JSON line on stdout:
  messages, pipeline_msgs_per_s, raw_loop_msgs_per_s, ratio, p50_ms, p99_ms,
  lost, duplicates, raw_duplicate_records, rss_mib_10k_conversations

Phases (same broker, same messages, one run):
  1. throughput: N MessageReceived events over C interleaved conversations (default
     50,000 over 10,000: 5 turns each) are published first; then the worker starts and
     drains them. Rate = decisions / (last - first DecisionMade record time). The
     worker's peak RSS (VmHWM) after holding C conversations is reported. A message
     has one decision per cause: its own, and one per action result the act stage
     records for it (a reset sent, an answer found); a duplicate is a second distinct
     decision for the same message and cause, lost a message with no decision.
  2. raw loop: a bare confluent-kafka consume -> Avro decode -> Avro encode -> produce
     loop over the same inbound records, in this process.
  3. latency: a fresh worker; messages sent at half the measured pipeline rate (and
     again at a quarter of it); latency = DecisionMade record time - MessageReceived
     record time (producer CreateTime of both records, same clock).
Usage: python bench/backbone.py [--messages N] [--conversations C] [--latency-seconds S]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events.codec import AvroCodec
from events.decisions import DecisionMade
from streams import services
from streams.kafka import EventPublisher, create_topics, producer_config, read_topic
from streams.settings import Settings
from tests.factories import SAMPLE_TEXTS, received
from tests.support import TopicWatcher, WorkerProcess, unique_settings, wait_for


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def publish(settings: Settings, n: int, conversations: int, tag: str = "") -> None:
    publisher = EventPublisher(settings, **{"linger.ms": 20, "batch.num.messages": 10000})
    for i in range(n):
        conv, turn = i % conversations, i // conversations
        text = SAMPLE_TEXTS[(conv * 7 + turn) % len(SAMPLE_TEXTS)]
        publisher.publish(received(text, conversation=f"{tag}conv-{conv}", index=turn))
    publisher.flush(120)


def rss_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def throughput_phase(
    bootstrap: str, n: int, conversations: int, tmp: Path, loglevel: str = "warn"
) -> dict[str, float]:
    settings = unique_settings(bootstrap)
    create_topics(settings)
    log(f"publishing {n} messages over {conversations} conversations")
    publish(settings, n, conversations)
    watcher = TopicWatcher(settings, f"{settings.topic_prefix}.conversations.decisions")
    worker = WorkerProcess(settings, tmp / "worker-throughput.log", loglevel).start()
    started = time.monotonic()
    last_report = started
    try:
        while True:
            done = len({d.message_id for d in watcher.of_type("DecisionMade")})
            if done >= n:
                break
            if time.monotonic() - last_report > 5:
                log(f"  {done}/{n} decisions")
                last_report = time.monotonic()
            if time.monotonic() - started > 1800 or not worker.alive():
                raise RuntimeError(f"worker stalled at {done}/{n}\n{worker.log_tail()}")
            time.sleep(0.2)
        assert worker.proc is not None
        rss = rss_peak_mib(worker.proc.pid)
        time.sleep(1.0)  # let stragglers (duplicates, if any) arrive before counting
        decisions = watcher.of_type("DecisionMade")
        raw = [ts for key, value, ts in watcher.raw]
    finally:
        worker.stop()
        watcher.close()
    times = sorted(raw)
    span = (times[-1] - times[0]) / 1000 if len(times) > 1 else float("nan")
    per_message: dict[str, set[str]] = {}
    per_cause: dict[tuple[str, str | None], set[str]] = {}
    for d in decisions:
        per_message.setdefault(d.message_id, set()).add(d.event_id)
        cause = (d.message_id, d.envelope.causation_id)
        per_cause.setdefault(cause, set()).add(d.event_id)
    distinct_ids = {d.event_id for d in decisions}
    return {
        "prefix": settings.topic_prefix,  # type: ignore[dict-item]
        "rate": len(distinct_ids) / span,
        "lost": n - len(per_message),
        "duplicates": sum(1 for ids in per_cause.values() if len(ids) > 1),
        "raw_duplicate_records": len(decisions) - len(distinct_ids),
        "rss": rss,
    }


def raw_loop_phase(bootstrap: str, prefix: str, n: int) -> float:
    """consume -> decode -> encode -> produce over the same inbound records."""
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
    codec = AvroCodec()
    inbound = f"{prefix}.conversations.inbound"
    out_topic = f"{prefix}.conversations.enriched"  # scratch: same broker, same size
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{prefix}",
            "enable.auto.commit": False,
            "fetch.min.bytes": 1,
        }
    )
    producer = Producer(producer_config(settings))
    parts = consumer.list_topics(inbound, timeout=10).topics[inbound].partitions
    consumer.assign([TopicPartition(inbound, p, 0) for p in parts])
    count, first = 0, None
    while count < n:
        for msg in consumer.consume(1000, timeout=1.0):
            if msg.error():
                continue
            if first is None:
                first = time.perf_counter()
            event = codec.decode(msg.value())
            while True:
                try:
                    producer.produce(out_topic, codec.encode(event, out_topic), msg.key())
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
            count += 1
    left = producer.flush(60)
    elapsed = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    if left:
        raise RuntimeError(f"raw loop: {left} records not delivered")
    return count / elapsed


def send_at_rate(publisher: EventPublisher, total: int, rate: float, tag: str) -> None:
    """Publish ``total`` messages at ``rate`` per second (2,000 conversations)."""
    start = time.perf_counter()
    for i in range(total):
        pause = start + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        text = SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)]
        publisher.publish(received(text, conversation=f"{tag}{i % 2000}", index=i // 2000))
        publisher.producer.poll(0)
    publisher.flush(60)


def latency_phase(
    bootstrap: str, rate: float, seconds: float, tmp: Path, loglevel: str = "warn"
) -> tuple[float, float, int]:
    """Open-loop arrivals at ``rate``; the watcher only stores bytes while it runs."""
    settings = unique_settings(bootstrap)
    create_topics(settings)
    codec = AvroCodec()
    watcher = TopicWatcher(
        settings, f"{settings.topic_prefix}.conversations.decisions", decode=False
    )
    worker = WorkerProcess(settings, tmp / "worker-latency.log", loglevel).start()
    try:
        publisher = EventPublisher(settings, **{"linger.ms": 1})
        warm = max(1, int(rate * 3))
        log(f"latency: warming up with {warm} messages over 3 s")
        send_at_rate(publisher, warm, rate, "warmup-")
        wait_for(
            lambda: decisions(watcher, codec) >= warm,
            180,
            f"worker warm\n{worker.log_tail()}",
            every=1.0,
        )
        total = max(1, int(rate * seconds))
        log(f"latency: {total} messages at {rate:.0f}/s")
        send_at_rate(publisher, total, rate, "lat-")
        wait_for(
            lambda: decisions(watcher, codec) >= total + warm,
            300,
            f"latency decisions\n{worker.log_tail()}",
            every=1.0,
        )
        decided: dict[str, int] = {}
        for _key, value, ts in list(watcher.raw):
            event = codec.decode(value)
            if isinstance(event, DecisionMade):
                decided.setdefault(event.message_id, ts)
    finally:
        worker.stop()
        watcher.close()
    sent = {}
    for record in read_topic(settings, f"{settings.topic_prefix}.conversations.inbound"):
        event = codec.decode(record.value)
        sent[getattr(event, "message_id", "")] = record.timestamp_ms
    lat = sorted(decided[m] - sent[m] for m in decided if m in sent and m.startswith("lat-"))
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return float(p50), float(p99), len(lat)


def decisions(watcher: TopicWatcher, codec: AvroCodec) -> int:
    """DecisionMade records so far (decoding only the new ones, after the fact)."""
    raw = watcher.raw
    end = len(raw)
    seen = getattr(watcher, "_bench_seen", 0)
    found = getattr(watcher, "_bench_found", 0)
    for _key, value, _ts in raw[seen:end]:
        found += isinstance(codec.decode(value), DecisionMade)
    watcher._bench_seen, watcher._bench_found = end, found  # type: ignore[attr-defined]
    return int(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--log-dir", type=Path, help="keep the workers' logs (info level) here")
    args = parser.parse_args()
    bootstrap = services.kafka_up()
    level = "info" if args.log_dir is not None else "warn"
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if args.log_dir is not None:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            tmp = args.log_dir
        thr = throughput_phase(bootstrap, args.messages, args.conversations, tmp, level)
        log(f"pipeline: {thr['rate']:.0f} msg/s, peak RSS {thr['rss']:.0f} MiB")
        raw = raw_loop_phase(bootstrap, str(thr["prefix"]), args.messages)
        log(f"raw loop: {raw:.0f} msg/s")
        half = thr["rate"] / 2
        p50, p99, measured = latency_phase(bootstrap, half, args.latency_seconds, tmp, level)
        log(f"latency at {half:.0f}/s over {measured} messages: p50 {p50:.0f}, p99 {p99:.0f} ms")
        quarter = thr["rate"] / 4
        q50, q99, _ = latency_phase(bootstrap, quarter, args.latency_seconds, tmp, level)
        log(f"latency at {quarter:.0f}/s: p50 {q50:.0f}, p99 {q99:.0f} ms")
    print(
        json.dumps(
            {
                "messages": args.messages,
                "pipeline_msgs_per_s": round(thr["rate"], 1),
                "raw_loop_msgs_per_s": round(raw, 1),
                "ratio": round(thr["rate"] / raw, 3),
                "p50_ms": p50,
                "p99_ms": p99,
                "lost": int(thr["lost"]),
                "duplicates": int(thr["duplicates"]),
                "raw_duplicate_records": int(thr["raw_duplicate_records"]),
                "rss_mib_10k_conversations": round(thr["rss"], 1),
                "conversations": args.conversations,
                "latency_messages": measured,
                "latency_rate_msgs_per_s": round(half, 1),
                "quarter_rate_msgs_per_s": round(quarter, 1),
                "p50_ms_quarter_rate": q50,
                "p99_ms_quarter_rate": q99,
            }
        )
    )


if __name__ == "__main__":
    main()
