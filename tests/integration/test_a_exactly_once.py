"""Exactly-once as readers see it, under kill -9 of the worker mid-stream.

The worker is restarted with the same static group membership (``worker_instance_id``,
as a restarted pod keeps its name), so it takes its partitions back at once instead of
waiting for the killed member's session to expire. Its log is at info level, so a
failure shows what it was waiting for (group join, changelog recovery, processing).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from events.codec import AvroCodec
from streams.kafka import EventPublisher, create_topics
from tests.factories import received
from tests.support import TopicWatcher, WorkerProcess, unique_settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MESSAGES = 2_000
CONVERSATIONS = 200
TEXTS = [
    "I forgot my password",
    "How do I export data?",
    "my invoice is wrong",
    "I'm getting a 401 error from the API",
    "This is unacceptable!",
    "thanks, that helped",
    "I want to speak to a manager",
    "can you help me with the thing",
    "refund please",
    "the report dashboard is slow",
]


def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing_after_dedup(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # the backbone under test: enrich + decide (the act stage, a separate deployment in
    # production, would add a second decision per answered message)
    settings = unique_settings(
        kafka_bootstrap,
        commit_interval_s=1.0,
        worker_agents="enrich,decide",
        worker_instance_id="worker-0",
    )
    create_topics(settings)
    publisher = EventPublisher(settings)
    for i in range(MESSAGES):
        conv, turn = i % CONVERSATIONS, i // CONVERSATIONS
        publisher.publish(
            received(TEXTS[(conv + turn) % len(TEXTS)], conversation=f"conv-{conv}", index=turn)
        )
    publisher.flush()

    decisions = TopicWatcher(settings, f"{settings.topic_prefix}.conversations.decisions")
    worker = WorkerProcess(settings, tmp_path / "worker.log", loglevel="info").start()
    try:

        def a_third_decided() -> bool:
            worker.check_alive()
            return len(decisions.of_type("DecisionMade")) >= MESSAGES // 3

        try:
            wait_for(a_third_decided, 120, "a third of the decisions", every=0.02)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.log_tail()}") from None
        worker.kill9()
        killed_at = len(decisions.of_type("DecisionMade"))
        worker = WorkerProcess(settings, tmp_path / "worker2.log", loglevel="info").start()

        def all_decided() -> bool:
            worker.check_alive()
            return len({d.message_id for d in decisions.of_type("DecisionMade")}) >= MESSAGES

        try:
            wait_for(all_decided, 180, "all decisions after restart")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.log_tail()}") from None
        worker.stop()
        records = decisions.of_type("DecisionMade")
    finally:
        worker.stop()
        decisions.close()

    assert killed_at < MESSAGES, "the kill must land mid-stream"
    ids_per_message: dict[str, set[str]] = defaultdict(set)
    bytes_per_id: dict[str, set[bytes]] = defaultdict(set)
    codec = AvroCodec()
    for d in records:
        ids_per_message[d.message_id].add(d.event_id)
        bytes_per_id[d.event_id].add(codec.encode(d))
    lost = MESSAGES - len(ids_per_message)
    duplicated = sum(1 for ids in ids_per_message.values() if len(ids) > 1)
    raw_duplicates = len(records) - len(bytes_per_id)
    print(
        f"\nexactly-once: messages={MESSAGES} killed_after={killed_at} lost={lost} "
        f"duplicates={duplicated} raw_duplicate_records={raw_duplicates}"
    )
    assert lost == 0
    assert duplicated == 0
    # Faust's consumer treats an offset jump as acknowledged offsets: a restarted worker
    # that delivered a batch fetched before its seek to the committed offsets skipped
    # (and committed) records it never processed (streams/faust_transport.py). The
    # transport drops such batches; a jump in the log means it no longer does.
    for name in ("worker.log", "worker2.log"):
        jumps = [
            line
            for line in (tmp_path / name).read_text(errors="replace").splitlines()
            if "consumer gap:" in line or "consumer behind:" in line
        ]
        assert not jumps, f"{name}: the consumer skipped records:\n" + "\n".join(jumps[:5])
    changed = {i: v for i, v in bytes_per_id.items() if len(v) > 1}
    if changed:
        event_id, versions = next(iter(changed.items()))
        shown = "\n".join(repr(codec.decode(b)) for b in versions)
        raise AssertionError(
            f"a redelivery changed the bytes of {len(changed)} decision(s); {event_id}:\n{shown}"
        )
