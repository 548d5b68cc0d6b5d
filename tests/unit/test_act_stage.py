"""The act stage through the log driver (issue 4): the blueprint password-reset and API-401
conversations run enrich -> decide -> act -> decide until quiescent, with the real
workflows (sample accounts, reset emails written as files) and a knowledge base that
finds nothing (a fake retriever), so the recorded results drive the replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from agent.workflows import FileMailer, OutgoingEmail, Workflows, build_workflows, load_accounts
from events.actions import ActionCompleted, ActionRequested
from events.base import Event, derive_event_id, origin_envelope
from events.codec import AvroCodec
from events.conversation import MessageReceived
from events.decisions import DecisionMade, ReplyRequested
from events.enrichment import IntentScore, ModelInfo, Sentiment
from kb.retrieve import Hit, Retrieval, Retriever
from processors.ports import Prediction
from replay.archive import read_archive, write_archive
from replay.driver import LogDriver, recorded_from_archives
from streams.act import ActionRecords, Actor, completed
from streams.bootstrap import build_responder_for, build_workflows_for
from streams.settings import Settings
from streams.steps import Output, Record, Steps
from streams.topics import Topics

START = datetime(2026, 9, 12, 12, 0, tzinfo=UTC)


class ScriptedModel:
    """A model port that scores by keywords (enough for these two conversations)."""

    info = ModelInfo(name="scripted", version="1", sha256="0" * 64)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [self._one(t.lower()) for t in texts]

    @staticmethod
    def _one(text: str) -> Prediction:
        api = any(w in text for w in ("401", "oauth", "code", "token", "api"))
        label = "TECHNICAL/API" if api else "ACCOUNT/Password"
        return Prediction(
            intents=(IntentScore(label=label, score=0.97),),
            sentiment=Sentiment(label="neutral", valence=0.0, frustration=0.0),
            language="en",
        )


class EmptyKnowledgeBase(Retriever):
    """A retriever that finds nothing (the answer falls back to the template)."""

    def __init__(self) -> None:
        pass

    def search(self, query: str, **_: Any) -> Retrieval:
        return Retrieval(query, "acme", (), 0.0, ())


class Outbox(FileMailer):
    """Writes .eml files and counts every send (a Message-ID names the user and the time,
    so a second file for the same reset would overwrite the first)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.sent: list[OutgoingEmail] = []

    def send(self, email: OutgoingEmail) -> str:
        self.sent.append(email)
        return super().send(email)


class ExportArticle(Retriever):
    """A retriever whose one passage answers a question about exporting data."""

    def __init__(self) -> None:
        pass

    def search(self, query: str, **kw: Any) -> Retrieval:
        text = (
            "To export data, open Settings > Data > Export, choose the objects and the"
            " format (CSV or XLSX), and select Start export. You get an email with a"
            " download link when the export is ready."
        )
        hit = Hit(
            article_id="kb-data-export",
            version=1,
            title="Export your data",
            product_area="DATA/Export",
            passage_id="kb-data-export@v1#0",
            heading="Export",
            text=text,
            vector=0.9,
            bm25=1.0,
            fused=0.95,
        )
        return Retrieval(query, "acme", (hit,), 0.95, ())


class PasswordWordsFirst(ExportArticle):
    """Ranks a password article first for any query that says "password"."""

    def search(self, query: str, **kw: Any) -> Retrieval:
        if "password" not in query or kw.get("product_area") == "DATA/Export":
            return super().search(query, **kw)
        hit = Hit(
            article_id="kb-password-reset",
            version=1,
            title="Reset your password",
            product_area="ACCOUNT/Password",
            passage_id="kb-password-reset@v1#0",
            heading="Reset",
            text="To reset your password, click Forgot password? on the sign-in page.",
            vector=0.9,
            bm25=1.0,
            fused=0.95,
        )
        return Retrieval(query, "acme", (hit,), 0.95, ())


def make_steps(
    tmp_path: Path, outbox: Outbox | None = None, retriever: Retriever | None = None
) -> Steps:
    settings = Settings(data_dir=tmp_path)

    def workflows(clock: Callable[[], datetime]) -> Workflows:
        if outbox is None:
            return build_workflows_for(settings, clock)
        accounts = load_accounts(str(resources.files("agent.workflows") / "sample_accounts.yaml"))
        return build_workflows(settings, accounts=accounts, mailer=outbox, clock=clock)

    actor = Actor(
        workflows=workflows,
        responder=lambda: build_responder_for(settings),
        retriever=lambda _tenant: retriever or EmptyKnowledgeBase(),
    )
    return Steps(AvroCodec(), Topics("t"), ScriptedModel(), actor=lambda: actor)


def records_of(steps: Steps, conversation: str, turns: list[str]) -> list[Record]:
    records = []
    for n, text in enumerate(turns):
        event = MessageReceived(
            envelope=origin_envelope(
                MessageReceived,
                tenant_id="acme",
                conversation_id=conversation,
                producer="test",
                producer_version="0",
                event_id=derive_event_id(conversation, "MessageReceived", n),
                occurred_at=START + timedelta(seconds=30 * n),
            ),
            message_id=f"{conversation}-m{n}",
            channel="web_chat",
            text=text,
            original_length=len(text),
            truncated=False,
        )
        out = steps.output(event)
        when = int(event.envelope.occurred_at.timestamp() * 1000)
        records.append(Record(out.topic, 0, n, out.key, out.value, when))
    return records


def play(steps: Steps, conversation: str, turns: list[str]) -> list[Event]:
    return [o.event for o in LogDriver(steps).run(records_of(steps, conversation, turns))]


def test_blueprint_password_reset_sends_the_link_once_recorded(tmp_path: Path) -> None:
    turns = ["I forgot my password", "my email is dana@acme.example", "yes, send the reset link"]
    events = play(make_steps(tmp_path), "bp-password-reset", turns)
    done = [e for e in events if isinstance(e, ActionCompleted) and e.kind == "password_reset"]
    assert done and done[0].outcome == "password_reset_sent"
    assert done[0].details["to"] == "d***@acme.example"
    replies = [e.text for e in events if isinstance(e, ReplyRequested)]
    assert any("I've sent a password reset link to d***@acme.example" in r for r in replies)
    assert len(list((tmp_path / "mail").glob("*.eml"))) == len(done)
    # every result follows its request, and nothing was dead-lettered
    requested = [e.action_id for e in events if isinstance(e, ActionRequested)]
    assert [e.action_id for e in events if isinstance(e, ActionCompleted)] == requested
    assert not any(type(e).__name__ == "EventRejected" for e in events)


def test_blueprint_api_401_identifies_the_expired_token(tmp_path: Path) -> None:
    turns = [
        "I'm getting a 401 error when calling the REST API",
        "I'm using OAuth 2.0",
        "Here's my code: [code snippet]",
        "The token was generated yesterday",
    ]
    events = play(make_steps(tmp_path), "bp-api-401", turns)
    outcomes = [e.outcome for e in events if isinstance(e, ActionCompleted)]
    assert outcomes[-1] == "token_expiry_identified"
    last_reply = [e for e in events if isinstance(e, ReplyRequested)][-1]
    assert "token" in last_reply.text.lower()


def test_the_same_conversation_yields_the_same_event_ids(tmp_path: Path) -> None:
    turns = ["I forgot my password", "my email is dana@acme.example"]
    first = play(make_steps(tmp_path / "a"), "c", turns)
    second = play(make_steps(tmp_path / "b"), "c", turns)
    strip = [e for e in first if not isinstance(e, ActionCompleted)]
    assert [e.event_id for e in strip] == [
        e.event_id for e in second if not isinstance(e, ActionCompleted)
    ]


def reset_request(conversation: str = "c-redeliver", channel: str = "web_chat") -> ActionRequested:
    env = origin_envelope(
        ActionRequested,
        tenant_id="acme",
        conversation_id=conversation,
        producer="test",
        producer_version="0",
        event_id=derive_event_id(conversation, "ActionRequested", 0),
        occurred_at=START,
    )
    return ActionRequested(
        envelope=env,
        action_id=env.event_id,
        message_id=f"{conversation}-m0",
        kind="password_reset",
        params={"email": "dana@acme.example"},
        intent="ACCOUNT/Password",
        channel=channel,
    )


def action_record(steps: Steps, request: ActionRequested, offset: int = 0) -> Record:
    out = steps.output(request)
    return Record(out.topic, 0, offset, out.key, out.value, 0)


def test_a_redelivered_request_is_not_performed_again(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "mail")
    steps = make_steps(tmp_path, outbox)
    record = action_record(steps, reset_request())
    first = steps.act_record(record)
    again = steps.act_record(record)  # the same record, redelivered
    assert [type(o.event).__name__ for o in first] == ["ActionCompleted"]
    assert first[0].event.outcome == "password_reset_sent"  # type: ignore[attr-defined]
    assert [(o.topic, o.key, o.value) for o in again] == [(o.topic, o.key, o.value) for o in first]
    assert [m.to for m in outbox.sent] == ["dana@acme.example"]
    other = steps.act_record(action_record(steps, reset_request("c-other"), 1))
    assert other[0].event.envelope.event_id != first[0].event.envelope.event_id
    assert len(outbox.sent) == 2  # a new action is performed


def test_a_recorded_result_counts_only_for_the_same_kind() -> None:
    records = ActionRecords()
    request = reset_request()
    records.remember([completed(request, status="completed", outcome="password_reset_sent")])
    assert records.recorded(request) is not None
    assert records.recorded(replace(request, kind="refund")) is None


def test_the_ledger_forgets_the_oldest_results_beyond_its_size() -> None:
    records = ActionRecords(max_records=2)
    requests = [reset_request(f"c{i}") for i in range(3)]
    for r in requests:
        records.remember([completed(r, status="completed", outcome="password_reset_sent")])
    assert [records.recorded(r) is not None for r in requests] == [False, True, True]


def test_an_answer_replies_on_the_requests_channel_and_is_recorded_with_its_reply(
    tmp_path: Path,
) -> None:
    steps = make_steps(tmp_path, retriever=ExportArticle())
    request = replace(
        reset_request(channel="email"), kind="answer", params={"question": "How do I export?"}
    )
    first = steps.act_record(action_record(steps, request))
    reply, done = (o.event for o in first)
    assert isinstance(reply, ReplyRequested) and isinstance(done, ActionCompleted)
    assert reply.channel == "email"
    assert [o.value for o in steps.act_record(action_record(steps, request))] == [
        o.value for o in first
    ]


def test_replay_uses_the_recorded_results_and_sends_no_mail(tmp_path: Path) -> None:
    """A conversation that sent a reset mail, replayed from archives of its log."""
    turns = ["I forgot my password", "my email is dana@acme.example", "yes, send the reset link"]
    live_outbox, replay_outbox = Outbox(tmp_path / "live"), Outbox(tmp_path / "replay")
    live = make_steps(tmp_path / "live", live_outbox)
    inbound = list(records_of(live, "bp-replay", turns))
    outputs = list(LogDriver(live).run(inbound))
    assert len(live_outbox.sent) == 1
    archives = tmp_path / "archive"
    write_archive(archives / "inbound.avro", inbound)
    for topic in (live.topics.enriched, live.topics.outbound):
        write_archive(
            archives / f"{topic}.avro",
            (
                Record(o.topic, 0, n, o.key, o.value, 0)
                for n, o in enumerate(outputs)
                if o.topic == topic
            ),
        )
    replay = make_steps(tmp_path / "replay", replay_outbox)
    recorded = recorded_from_archives(
        [archives / f"{t}.avro" for t in (live.topics.enriched, live.topics.outbound)], replay.codec
    )
    driver = LogDriver(replay, recorded=recorded)
    replayed = list(driver.run(read_archive(archives / "inbound.avro")))
    assert replay_outbox.sent == []
    assert driver.unrecorded == []

    def values(outs: list[Output], kind: type[Event]) -> list[bytes]:
        return [o.value for o in outs if isinstance(o.event, kind)]

    assert values(replayed, DecisionMade) == values(outputs, DecisionMade)
    assert values(replayed, DecisionMade)  # the conversation was decided
    assert values(replayed, ActionCompleted) == values(outputs, ActionCompleted)
    assert [o.value for o in replayed] == [o.value for o in outputs]


def test_replay_without_a_recorded_result_performs_nothing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "mail")
    steps = make_steps(tmp_path, outbox)
    driver = LogDriver(steps, recorded=ActionRecords())
    turns = ["I forgot my password", "my email is dana@acme.example"]
    outputs = list(driver.run(records_of(steps, "bp-unrecorded", turns)))
    requested = [o.event.action_id for o in outputs if isinstance(o.event, ActionRequested)]
    assert requested and driver.unrecorded == requested
    assert not any(isinstance(o.event, ActionCompleted) for o in outputs)
    assert outbox.sent == []


def test_an_answer_comes_from_the_requested_intents_articles_first(tmp_path: Path) -> None:
    """A resumed topic ("ok password is reset, now back to the export") is answered from
    the export articles although the words match a password article best."""
    steps = make_steps(tmp_path, retriever=PasswordWordsFirst())
    question = "Ok password is reset, now back to the export"
    request = replace(
        reset_request(), kind="answer", intent="DATA/Export", params={"question": question}
    )
    *_, done = (o.event for o in steps.act_record(action_record(steps, request)))
    assert isinstance(done, ActionCompleted) and done.outcome == "answered"
    assert done.citations == ("kb-data-export@v1#0",)
    as_password = replace(request, intent="ACCOUNT/Password", action_id="other")
    *_, done = (o.event for o in steps.act_record(action_record(steps, as_password)))
    assert isinstance(done, ActionCompleted)
    assert done.citations == ("kb-password-reset@v1#0",)


def test_an_action_id_counts_only_within_its_own_conversation(tmp_path: Path) -> None:
    """Another tenant's request that happens to carry the same action id (ids derived from
    a reused conversation id) is performed for that tenant, never answered with the
    first tenant's result."""
    outbox = Outbox(tmp_path / "mail")
    steps = make_steps(tmp_path, outbox)
    acme = reset_request()
    globex = replace(
        acme,
        envelope=replace(acme.envelope, tenant_id="globex"),
        params={"email": "marge@globex.example"},
    )
    assert globex.action_id == acme.action_id
    first = steps.act_record(action_record(steps, acme))
    other = steps.act_record(action_record(steps, globex, 1))
    assert [m.to for m in outbox.sent] == ["dana@acme.example", "marge@globex.example"]
    assert (other[0].key, first[0].key) == (b"globex/c-redeliver", b"acme/c-redeliver")


def test_the_ledger_asks_again_while_a_partition_has_no_leader_then_gives_up() -> None:
    """A topic created a moment ago answers "not leader" until its leader is elected
    (seen in CI): the ledger asks again instead of acting as if the log were empty."""
    from confluent_kafka import KafkaError, KafkaException

    from streams.act import KafkaActionLedger

    ledger = KafkaActionLedger("127.0.0.1:1", ["t.enriched"], timeout_s=0.5)
    try:
        answers: list[object] = [
            KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)),
            KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE)),
            (0, 7),
        ]

        def watermarks() -> object:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        assert ledger._retrying(watermarks) == (0, 7)
        assert ledger.retries == 2

        def never_elected() -> object:
            raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))

        with pytest.raises(KafkaException):
            ledger._retrying(never_elected)

        def refused() -> object:  # not transient: raised at once
            raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))

        before = ledger.retries
        with pytest.raises(KafkaException):
            ledger._retrying(refused)
        assert ledger.retries == before
    finally:
        ledger.close()


def test_warm_builds_the_adapters_once_before_the_first_action(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    built: list[str] = []
    searched: list[str] = []

    def workflows(clock: Callable[[], datetime]) -> Workflows:
        built.append("workflows")
        return build_workflows_for(settings, clock)

    def responder() -> Any:
        built.append("responder")
        return build_responder_for(settings)

    def retriever(tenant: str) -> Any:
        searched.append(tenant)
        return EmptyKnowledgeBase()

    actor = Actor(workflows=workflows, responder=responder, retriever=retriever)
    actor.warm(["acme", "globex"])
    assert built == ["workflows", "responder"] and searched == ["acme", "globex"]
    steps = Steps(AvroCodec(), Topics("t"), ScriptedModel(), actor=lambda: actor)
    events = play(steps, "warm", ["I forgot my password", "dana@acme.example"])
    assert any(isinstance(e, ActionCompleted) for e in events)
    actor.warm()
    assert built == ["workflows", "responder"]  # built once, used by the actions
