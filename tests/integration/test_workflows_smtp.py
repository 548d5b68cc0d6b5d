"""Password reset over real SMTP: smtplib -> a local aiosmtpd server the test reads; the
act stage performs a redelivered request once (its result read back from real Kafka)."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from agent.workflows import ActionRequest, Workflows, build_workflows
from agent.workflows.mailer import RESET_SUBJECT, SmtpMailer, reset_email
from agent.workflows.tokens import ResetTokens, SQLiteTokenStore
from events.actions import ActionCompleted, ActionRequested
from events.base import derive_event_id, origin_envelope
from events.codec import AvroCodec
from processors.baseline import BaselineLexicalModel
from streams.act import Actor, KafkaActionLedger
from streams.bootstrap import build_responder_for, build_workflows_for
from streams.kafka import EventPublisher, create_topics
from streams.settings import Settings as AppSettings
from streams.steps import Record, Steps
from streams.topics import Topics
from tests.smtp_inbox import Inbox, free_port
from tests.support import unique_settings
from tests.unit.test_act_stage import EmptyKnowledgeBase
from tests.unit.test_workflows_billing import NOW
from tests.unit.test_workflows_password import ACCOUNTS_YAML, accounts
from tests.unit.test_workflows_tokens import StepClock

pytestmark = pytest.mark.integration


class Settings:
    def __init__(self, port: int, db: Path) -> None:
        self.workflows_accounts_path = str(ACCOUNTS_YAML)
        self.smtp_host = "127.0.0.1"
        self.smtp_port = port
        self.smtp_timeout_s = 5.0
        self.reset_token_store = f"sqlite:///{db}"
        self.reset_link_base_url = "https://app.casestream.io/reset-password"


def link_token(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    link = next(line for line in body.get_content().splitlines() if "token=" in line)
    assert link.startswith("https://app.casestream.io/reset-password?token=")
    token: str = parse_qs(urlparse(link).query)["token"][0]
    return token


def redeem(wf: Workflows, token: str) -> str:
    return wf.password.tokens.redeem(token).status


def test_reset_email_arrives_and_its_link_works_once(
    smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    clock = StepClock(NOW)
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=clock)
    result = wf.perform(
        ActionRequest("password_reset", "acme", "conv-7", {"email": "dana@acme.example"})
    )
    assert (result.status, result.outcome) == ("completed", "password_reset_sent")
    (mail,) = inbox.wait_for(1)
    assert inbox.envelopes == [("no-reply@casestream.io", ["dana@acme.example"])]
    assert mail["To"] == "dana@acme.example"
    assert mail["Subject"] == RESET_SUBJECT
    assert mail["Message-ID"] == result.details["message_id"]
    token = link_token(mail)
    assert token not in str(result.to_dict())
    assert redeem(wf, token) == "redeemed"
    assert redeem(wf, token) == "used"


def test_link_expires_after_thirty_minutes(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    clock = StepClock(NOW)
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=clock)
    wf.perform(ActionRequest("password_reset", "globex", "c", {"email": "marge@globex.example"}))
    (mail,) = inbox.wait_for(1)
    clock.advance(minutes=30)
    assert redeem(wf, link_token(mail)) == "expired"


def test_only_the_newest_mailed_link_works(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    clock = StepClock(NOW)
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=clock)
    for _ in range(2):
        wf.perform(ActionRequest("password_reset", "acme", "c", {"email": "priya@acme.example"}))
        clock.advance(minutes=1)
    first, second = inbox.wait_for(2)
    assert redeem(wf, link_token(first)) == "superseded"
    assert redeem(wf, link_token(second)) == "redeemed"


def test_other_tenant_gets_no_mail(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=StepClock(NOW))
    result = wf.perform(
        ActionRequest("password_reset", "globex", "c", {"email": "dana@acme.example"})
    )
    assert result.outcome == "identity_not_verified"
    assert inbox.wait_for(1, timeout=0.3) == []


def test_smtp_server_down_is_an_error_result(tmp_path: Path) -> None:
    wf = build_workflows(Settings(free_port(), tmp_path / "tokens.db"), clock=StepClock(NOW))
    result = wf.perform(
        ActionRequest("password_reset", "acme", "c", {"email": "dana@acme.example"})
    )
    assert (result.status, result.outcome) == ("error", "error")
    assert result.reason.startswith("smtp:")


def test_smtp_mailer_sends_date_header(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    user = accounts().directory().find_user("acme", "sam.ortiz@acme.example")
    assert user is not None
    email = reset_email(user, "https://x/reset?token=t", NOW + timedelta(minutes=30), now=NOW)
    SmtpMailer("127.0.0.1", port).send(email)
    (mail,) = inbox.wait_for(1)
    assert mail["Date"] == "Sat, 12 Sep 2026 12:00:00 +0000"
    assert "12:30 UTC" in mail.get_content()


def test_sqlite_token_store_is_what_settings_chose(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    _, port = smtp
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=StepClock(NOW))
    assert isinstance(wf.password.tokens, ResetTokens)
    assert isinstance(wf.password.tokens.store, SQLiteTokenStore)


def demo_reset_request(conversation: str) -> ActionRequested:
    env = origin_envelope(
        ActionRequested,
        tenant_id="demo",
        conversation_id=conversation,
        producer="test",
        producer_version="0",
        event_id=derive_event_id(conversation, "ActionRequested", 0),
    )
    return ActionRequested(
        envelope=env,
        action_id=env.event_id,
        message_id=f"{conversation}-m2",
        kind="password_reset",
        params={"email": "user@example.com"},
        intent="ACCOUNT/Password",
    )


def act_stage(settings: AppSettings) -> tuple[Steps, KafkaActionLedger]:
    """The worker's act stage: real workflows over SMTP, results read back from Kafka."""
    codec = AvroCodec()
    ledger = KafkaActionLedger.from_settings(settings, codec)
    actor = Actor(
        workflows=lambda clock: build_workflows_for(settings, clock),
        responder=lambda: build_responder_for(settings),
        retriever=lambda _tenant: EmptyKnowledgeBase(),
        ledger=lambda: ledger,
    )
    model = BaselineLexicalModel()
    return Steps(codec, Topics(settings.topic_prefix), model, actor=lambda: actor), ledger


def test_act_stage_sends_one_mail_for_a_redelivered_request_across_a_restart(
    smtp: tuple[Inbox, int], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The same ActionRequested delivered three times (twice to one worker, once more to
    a restarted one that knows only the log) -> one mail, one ActionCompleted."""
    inbox, port = smtp
    settings = unique_settings(
        kafka_bootstrap, smtp_host="127.0.0.1", smtp_port=port, data_dir=tmp_path
    )
    create_topics(settings)
    publisher = EventPublisher(settings)
    steps, ledger = act_stage(settings)
    request = demo_reset_request("c-restart")
    out = steps.output(request)
    record = Record(out.topic, 0, 0, out.key, out.value, 0)

    first = steps.act_record(record)
    (done,) = (o.event for o in first)
    assert isinstance(done, ActionCompleted) and done.outcome == "password_reset_sent"
    for o in first:  # what the act agent does with its outputs
        publisher.send(o)
    publisher.flush()
    assert [o.value for o in steps.act_record(record)] == [o.value for o in first]
    ledger.close()

    restarted, fresh = act_stage(settings)  # a new process: nothing in memory
    try:
        again = restarted.act_record(record)
        assert [(o.topic, o.key, o.value) for o in again] == [
            (o.topic, o.key, o.value) for o in first
        ]
        # found on the log, not in memory
        assert fresh.records_read >= 1, f"ledger errors: {restarted.actor.ledger_errors}"
        other = restarted.act_record(Record(out.topic, 0, 1, *key_value(restarted, "c-new"), 0))
        assert other[0].event.envelope.event_id != done.envelope.event_id
    finally:
        fresh.close()
    mails = inbox.wait_for(2)
    assert [m["To"] for m in mails] == ["user@example.com", "user@example.com"]
    assert inbox.wait_for(3, timeout=0.5) == mails  # the redeliveries sent nothing


def key_value(steps: Steps, conversation: str) -> tuple[bytes, bytes]:
    out = steps.output(demo_reset_request(conversation))
    return out.key, out.value


def test_act_stage_reads_back_only_requests_that_can_be_redeliveries(
    smtp: tuple[Inbox, int], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Requests already on the actions partition when the worker first reads from it may
    have been performed by a process before it: their results are read back. A request
    appended afterwards was delivered to no one before: the in-memory ledger answers,
    the log is not read. A rebalance makes every partition's position doubtful again."""
    from confluent_kafka import Producer, TopicPartition

    _, port = smtp
    settings = unique_settings(
        kafka_bootstrap, smtp_host="127.0.0.1", smtp_port=port, data_dir=tmp_path
    )
    create_topics(settings)
    actions = Topics(settings.topic_prefix).actions
    steps, ledger = act_stage(settings)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def append(conversation: str) -> Record:
        out = steps.output(demo_reset_request(conversation))
        producer.produce(actions, out.value, out.key, partition=0)
        producer.flush(10)
        _, high = ledger._consumer.get_watermark_offsets(
            TopicPartition(actions, 0), timeout=10, cached=False
        )
        return Record(actions, 0, high - 1, out.key, out.value, 0)

    try:
        before = [append(f"c-before-{i}") for i in range(2)]
        assert all(o.event.outcome == "password_reset_sent" for o in steps.act_record(before[0]))
        assert ledger.read_backs == 1  # on the log before the worker looked: maybe redelivered
        steps.act_record(before[1])
        assert ledger.read_backs == 2
        after = append("c-after")
        steps.act_record(after)
        assert ledger.read_backs == 2  # appended since: a first delivery, nothing read
        steps.actor.partitions_assigned([(actions, 0)])  # a rebalance: the end is taken anew
        assert not ledger.first_delivery((actions, 0, after.offset))  # maybe read by another
        assert steps.act_record(after)[0].event.outcome == "password_reset_sent"  # recorded
        assert ledger.read_backs == 2  # found in memory first
        later = append("c-later")
        steps.act_record(later)
        assert ledger.read_backs == 2  # appended after the assignment: a first delivery
    finally:
        ledger.close()
