"""The act stage through the log driver (issue 4): the blueprint password-reset and API-401
conversations run enrich -> decide -> act -> decide until quiescent, with the real
workflows (sample accounts, reset emails written as files) and a knowledge base that
finds nothing (a fake retriever), so the recorded results drive the replies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from events.actions import ActionCompleted, ActionRequested
from events.base import Event, derive_event_id, origin_envelope
from events.codec import AvroCodec
from events.conversation import MessageReceived
from events.decisions import ReplyRequested
from events.enrichment import IntentScore, ModelInfo, Sentiment
from kb.retrieve import Retrieval, Retriever
from processors.ports import Prediction
from replay.driver import LogDriver
from streams.act import Actor
from streams.bootstrap import build_responder_for, build_workflows_for
from streams.settings import Settings
from streams.steps import Record, Steps
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


def make_steps(tmp_path: Path) -> Steps:
    settings = Settings(data_dir=tmp_path)
    actor = Actor(
        workflows=lambda clock: build_workflows_for(settings, clock),
        responder=lambda: build_responder_for(settings),
        retriever=lambda _tenant: EmptyKnowledgeBase(),
    )
    return Steps(AvroCodec(), Topics("t"), ScriptedModel(), actor=lambda: actor)


def play(steps: Steps, conversation: str, turns: list[str]) -> list[Event]:
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
    return [o.event for o in LogDriver(steps).run(records)]


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
