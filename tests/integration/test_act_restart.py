"""A worker killed right after a password reset sends no second mail when it comes back.

The live worker's act stage reads its ledger back from the log (``act_read_back``, on by
default) for requests that can be redeliveries. Offsets are never committed before the kill
(commit interval 60 s), so the restarted worker is redelivered the ActionRequested for
certain: it re-emits the recorded ActionCompleted (same id) and sends nothing; without
the ledger it would send the mail again. Both workers share a static group instance id,
so the second takes the partitions back without waiting for the first one's session.

It also covers a Faust race (``streams/faust_transport.py``): the restarted worker
fetches input records while it restores its table, the restore clears the agents'
queues, and a partition with nothing committed was not sought back, so the reset
request was never delivered again. The ledger itself is tested across a fresh actor in
test_workflows_smtp.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from events.actions import ActionCompleted
from streams.kafka import EventPublisher, create_topics
from tests.factories import received
from tests.integration.test_blueprint_scenarios import Worker
from tests.smtp_inbox import Inbox
from tests.support import TopicWatcher, unique_settings, wait_for

pytestmark = pytest.mark.integration


def test_a_worker_killed_after_a_reset_sends_no_second_mail(
    smtp: tuple[Inbox, int], kafka_bootstrap: str, tmp_path: Path
) -> None:
    inbox, port = smtp
    settings = unique_settings(
        kafka_bootstrap,
        commit_interval_s=60.0,
        smtp_host="127.0.0.1",
        smtp_port=port,
        data_dir=tmp_path / "data",
        kb_store=tmp_path / "kb",
        worker_instance_id="act-restart",
    )
    create_topics(settings)
    enriched = TopicWatcher(settings, f"{settings.topic_prefix}.conversations.enriched")
    worker = Worker(settings, tmp_path / "worker.log", loglevel="info").start()
    try:
        publisher = EventPublisher(settings)
        for n, text in enumerate(["I forgot my password", "my email is user@example.com"]):
            publisher.publish(received(text, conversation="c-crash", tenant="demo", index=n))
        publisher.flush()

        def resets() -> list[ActionCompleted]:
            return [
                e
                for e in enriched.of_type("ActionCompleted")
                if isinstance(e, ActionCompleted) and e.kind == "password_reset"
            ]

        wait_for(lambda: len(resets()) == 1, 120, f"the reset\n{worker.log_tail()}")
        worker.kill9()  # nothing was committed: every action comes again
        worker = Worker(settings, tmp_path / "worker.log", loglevel="info").start()
        wait_for(lambda: len(resets()) >= 2, 120, f"the redelivered reset\n{worker.log_tail()}")
        first, again = resets()[:2]
        assert again.envelope.event_id == first.envelope.event_id
        assert again == first
        assert [m["To"] for m in inbox.wait_for(1)] == ["user@example.com"]
        assert len(inbox.wait_for(2, timeout=2.0)) == 1  # the redelivery sent nothing
    finally:
        worker.stop()
        enriched.close()
