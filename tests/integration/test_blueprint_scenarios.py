"""The blueprint's four conversation scenarios and five edge cases, end to end (issue 4).

Nine conversations of the sample directory's demo tenant (user@example.com) go in over
HTTP through the web-chat connector, concurrently, turn by turn (the next turn once the
agent has answered the last), to one live worker (enrich, decide, act) on the real local
broker; the reset email goes over SMTP to a local aiosmtpd server. Each scenario asserts
its outcome events. Afterwards the whole log is replayed from Kafka through the log
driver with the recorded action results: no action is performed again (no new mail) and
every ``DecisionMade`` comes out byte for byte as it did live.

The worker uses the baseline model (deterministic, nothing to load), so the replay
re-enriches exactly as the worker did.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.workflows.mailer import RESET_SUBJECT
from connectors.webchat import create_app
from events.actions import ActionCompleted, ActionRequested
from events.base import Event
from events.codec import AvroCodec
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.enrichment import MessageEnriched
from processors.baseline import BaselineLexicalModel
from replay.demo import SCENARIOS as DEMO
from replay.driver import LogDriver, recorded_from_kafka
from streams.bootstrap import build_actor
from streams.kafka import create_topics, read_topic
from streams.settings import Settings
from streams.steps import Steps
from streams.topics import Topics
from tests.integration.test_workflows_smtp import link_token
from tests.smtp_inbox import Inbox, serving_inbox
from tests.support import REPO, TopicWatcher, WorkerProcess, settings_env, unique_settings, wait_for

pytestmark = pytest.mark.integration
KEY = {"X-API-Key": "blueprint-key"}
LONG_TEXT = (
    "How do I export my contacts to a CSV file? "
    + ("I have pasted the whole error log below because I am not sure what matters. " * 1400)[
        : 100_000 - 43
    ]
)
CODE = (
    "Here's my code: resp = requests.get('https://api.casestream.io/v2/contacts', "
    "headers={'Authorization': f'Bearer {token}'}); print(resp.status_code, resp.text)"
)
# the blueprint's scenarios as the demo plays them; the API one also pastes code
SCENARIOS: dict[str, list[str]] = {
    "password reset": DEMO["simple password reset"],
    "api 401": [*DEMO["API troubleshooting"][:2], CODE, *DEMO["API troubleshooting"][2:]],
    "angry customer": DEMO["angry customer"],
    "context switch": DEMO["context switch"],
    "sql injection": DEMO["SQL injection as text"],
    "100k characters": [LONG_TEXT],
    "mixed languages": [
        "Hola, no puedo descargar mi factura del mes pasado",
        "I still can't find the invoice for last month",
    ],
    "loop": ["I need help with the thing I asked about"] * 3,
    "conflict": ["Enable and disable the same feature"],
}
TOPICS = ("enriched", "decisions", "outbound", "cases", "actions", "deadletter")


class Worker(WorkerProcess):
    """The worker with the act stage's SMTP relay and stores (beyond ``settings_env``)."""

    def start(self) -> Worker:
        s = self.settings
        env = settings_env(s) | {
            "CASESTREAM_SMTP_HOST": str(s.smtp_host),
            "CASESTREAM_SMTP_PORT": str(s.smtp_port),
            "CASESTREAM_DATA_DIR": str(s.data_dir),
            "CASESTREAM_KB_STORE": str(s.kb_store),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--loglevel", self.loglevel],
            cwd=REPO,
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self


@dataclass
class Live:
    settings: Settings
    inbox: Inbox
    watchers: dict[str, TopicWatcher]
    conversations: dict[str, str] = field(default_factory=dict)  # scenario -> id
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def events(self, scenario: str, kind: type[Event], topic: str) -> list[Any]:
        conversation = self.conversations[scenario]
        return [
            e
            for e in self.watchers[topic].snapshot()
            if isinstance(e, kind) and e.envelope.conversation_id == conversation
        ]

    def answered(self, scenario: str, message_id: str) -> bool:
        """The agent replied to ``message_id``, and every action it asked for is done,
        so the result is on the decider's input before the customer's next turn."""
        replies = [r for r in self.events(scenario, ReplyRequested, "outbound")]
        if not any(r.message_id == message_id for r in replies):
            return False
        done = {c.action_id for c in self.events(scenario, ActionCompleted, "enriched")}
        requested = {
            r.action_id
            for r in self.events(scenario, ActionRequested, "actions")
            if r.message_id == message_id
        }
        by_act = {
            r.envelope.causation_id
            for r in replies
            if r.message_id == message_id and r.envelope.producer == "step.act"
        }
        return requested | by_act <= done

    def decisions(self, scenario: str) -> list[DecisionMade]:
        return self.events(scenario, DecisionMade, "decisions")

    def completed(self, scenario: str, kind: str) -> list[ActionCompleted]:
        return [c for c in self.events(scenario, ActionCompleted, "enriched") if c.kind == kind]

    def enriched(self, scenario: str) -> list[MessageEnriched]:
        return self.events(scenario, MessageEnriched, "enriched")


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("blueprint")
    with serving_inbox() as (inbox, port):
        settings = unique_settings(
            kafka_bootstrap,
            api_keys={KEY["X-API-Key"]: "demo"},
            smtp_host="127.0.0.1",
            smtp_port=port,
            data_dir=tmp / "data",
            kb_store=tmp / "kb",
        )
        create_topics(settings)
        names = Topics(settings.topic_prefix)
        watchers = {t: TopicWatcher(settings, getattr(names, t)) for t in TOPICS}
        worker = Worker(settings, tmp / "worker.log").start()
        live = Live(settings, inbox, watchers)
        try:
            with TestClient(create_app(settings)) as client:
                wait_for(lambda: client.get("/readyz").status_code == 200, 60, "connector ready")
                for name in SCENARIOS:
                    created = client.post("/v1/conversations", headers=KEY, json={})
                    assert created.status_code == 201, created.text
                    live.conversations[name] = created.json()["conversation_id"]
                    live.accepted[name] = []
                for turn in range(max(len(t) for t in SCENARIOS.values())):
                    waiting = []
                    for name, turns in SCENARIOS.items():
                        if turn >= len(turns):
                            continue
                        sent = client.post(
                            f"/v1/conversations/{live.conversations[name]}/messages",
                            headers=KEY,
                            json={"text": turns[turn], "message_id": f"m{turn}-{uuid.uuid4().hex}"},
                        )
                        assert sent.status_code == 202, sent.text
                        live.accepted[name].append(sent.json())
                        waiting.append((name, sent.json()["message_id"]))
                    for name, message_id in waiting:
                        wait_for(
                            lambda n=name, m=message_id: live.answered(n, m),  # type: ignore[misc]
                            120,
                            f"the agent's answer to turn {turn + 1} of {name!r}\n{worker.log_tail()}",
                        )
            yield live
        finally:
            worker.stop()
            for w in watchers.values():
                w.close()


def test_password_reset_sends_the_link(live: Live) -> None:
    (done,) = live.completed("password reset", "password_reset")
    assert (done.status, done.outcome) == ("completed", "password_reset_sent")
    assert done.details["to"] == "u***@example.com"
    (mail,) = live.inbox.wait_for(1)
    assert live.inbox.envelopes == [("no-reply@casestream.io", ["user@example.com"])]
    assert mail["Subject"] == RESET_SUBJECT
    assert mail["Message-ID"] == done.details["message_id"]
    assert link_token(mail)
    replies = live.events("password reset", ReplyRequested, "outbound")
    assert any("reset link" in r.text and "u***@example.com" in r.text for r in replies)


def test_api_401_with_yesterdays_oauth_token_is_token_expiry(live: Live) -> None:
    diagnoses = live.completed("api 401", "api_diagnosis")
    assert diagnoses and diagnoses[-1].outcome == "token_expiry_identified"
    last = live.accepted["api 401"][-1]["message_id"]
    assert diagnoses[-1].message_id == last
    reply = [r for r in live.events("api 401", ReplyRequested, "outbound") if r.message_id == last]
    assert reply and "token" in reply[-1].text.lower()


def test_angry_customer_is_escalated_to_a_human(live: Live) -> None:
    (case,) = live.events("angry customer", CaseEscalated, "cases")
    assert case.message_id == live.accepted["angry customer"][-1]["message_id"]
    assert len(case.sentiment_trajectory) == 3
    assert case.transcript_ref
    assert live.decisions("angry customer")[-1].action == "escalate"
    replies = live.events("angry customer", ReplyRequested, "outbound")
    assert replies[-1].kind == "handover"


def test_context_switch_resolves_both_issues(live: Live) -> None:
    requests = {r.action_id: r for r in live.events("context switch", ActionRequested, "actions")}
    resolved = [
        (requests[c.action_id].intent, c)
        for c in live.events("context switch", ActionCompleted, "enriched")
        if c.status == "completed"
    ]
    assert {intent for intent, _ in resolved} >= {"DATA/Export", "ACCOUNT/Password"}
    decisions = live.decisions("context switch")
    assert [d.intent for d in decisions] == ["DATA/Export", "ACCOUNT/Password", "DATA/Export"]
    assert "escalate" not in {d.action for d in decisions}
    last_intent, last = resolved[-1]
    assert last_intent == "DATA/Export"  # back to the export, and answered from its articles
    assert last.citations and all(c.startswith("kb-data-export") for c in last.citations)
    assert not live.events("context switch", CaseEscalated, "cases")


def test_sql_injection_is_handled_as_text_and_flagged(live: Live) -> None:
    (enriched,) = live.enriched("sql injection")
    assert enriched.text == "'; DROP TABLE users; --"
    assert "sql_injection" in enriched.flags
    (decision,) = live.decisions("sql injection")
    assert decision.action in ("reply", "clarify")
    assert live.events("sql injection", ReplyRequested, "outbound")
    assert not live.watchers["deadletter"].snapshot()


def test_100k_characters_are_truncated_and_processed(live: Live) -> None:
    (accepted,) = live.accepted["100k characters"]
    assert accepted["truncated"] is True
    assert (accepted["original_length"], accepted["accepted_chars"]) == (100_000, 10_000)
    (enriched,) = live.enriched("100k characters")
    assert "truncated" in enriched.flags and len(enriched.text) == 10_000
    (decision,) = live.decisions("100k characters")
    assert decision.intent == "DATA/Export"
    assert live.events("100k characters", ReplyRequested, "outbound")


def test_mixed_languages_are_detected(live: Live) -> None:
    assert [e.language for e in live.enriched("mixed languages")] == ["es", "en"]
    replied = {r.message_id for r in live.events("mixed languages", ReplyRequested, "outbound")}
    assert replied == {a["message_id"] for a in live.accepted["mixed languages"]}


def test_the_thing_i_asked_about_loop_is_detected_and_broken(live: Live) -> None:
    decisions = live.decisions("loop")
    assert [d.reason for d in decisions][1:] == ["loop_detected", "loop_detected"]
    assert decisions[1].action == "clarify"  # a different strategy first
    assert decisions[2].action == "escalate"  # then a human
    (case,) = live.events("loop", CaseEscalated, "cases")
    assert case.reason == "loop_detected"


def test_enable_and_disable_the_same_feature_is_clarified(live: Live) -> None:
    clarifications = live.events("conflict", ClarificationRequested, "decisions")
    assert clarifications and {"enable", "disable"} <= set(clarifications[-1].options)
    assert any(d.action == "clarify" and d.reason == "conflict" for d in live.decisions("conflict"))
    assert not live.events("conflict", CaseEscalated, "cases")


def test_replaying_the_log_performs_no_action_and_repeats_every_decision(live: Live) -> None:
    settings = live.settings
    codec = AvroCodec()
    names = Topics(settings.topic_prefix)
    steps = Steps(codec, names, BaselineLexicalModel(), actor=lambda: build_actor(settings))
    driver = LogDriver(steps, recorded=recorded_from_kafka(settings, codec))
    mails = len(live.inbox.wait_for(1))
    replayed: dict[bytes, list[bytes]] = {}
    for out in driver.run(read_topic(settings, names.inbound)):
        if isinstance(out.event, DecisionMade):
            replayed.setdefault(out.key, []).append(out.value)
    assert driver.unrecorded == []
    assert len(live.inbox.wait_for(mails + 1, timeout=1.0)) == mails  # no new mail
    recorded: dict[bytes, list[bytes]] = {}
    for key, value, _ in live.watchers["decisions"].raw:
        if isinstance(codec.decode(value), DecisionMade):
            recorded.setdefault(key or b"", []).append(value or b"")
    assert len(recorded) == len(SCENARIOS)
    assert replayed == recorded
