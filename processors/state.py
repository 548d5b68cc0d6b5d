"""The conversation's state and how events fold into it: ``evolve(state, event)``. Pure.

``ConversationState`` is everything the policy remembers about one conversation;
``evolve`` folds any event of the conversation (customer messages, the policy's own
decisions, action results) into it, so the state is a function of the event log.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from events.actions import ActionCompleted, ActionRequested
from events.base import Event
from events.conversation import ConversationClosed, ConversationStarted
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade
from events.enrichment import MessageEnriched
from processors import cues
from processors.taxonomy import (
    polarities,
    refers_back,
    technical_level,
    text_key,
    threshold_for,
    topic_labels,
)

TOPICS = frozenset(topic_labels())
MAX_SUSPENDED = 5
HISTORY = 10
#: Message ids remembered to drop a message delivered twice (retries, redelivery).
SEEN = 32
#: Requested actions remembered until their result arrives.
MAX_PENDING = 8
#: Action outcomes after which the same request is not repeated.
SUCCEEDED = frozenset({"password_reset_sent", "refund_issued", "invoice_sent"})
_CASE_NS = uuid.UUID("0b7d2c58-1f0e-4c3a-9e7a-636173657300")


@dataclass(frozen=True, slots=True)
class ConversationState:
    """Everything the policy remembers about one conversation.

    ``topic`` is the intent being worked on and ``suspended`` the topics the customer
    switched away from (most recent last): the context stack.
    """

    tenant_id: str = ""
    conversation_id: str = ""
    status: str = "new"  # new | open | escalated | closed
    channel: str = "web_chat"
    turn: int = 0
    frustration: float = 0.0
    negative_streak: int = 0
    unclear_turns: int = 0
    valence_trajectory: tuple[float, ...] = ()
    frustration_trajectory: tuple[float, ...] = ()
    intent_history: tuple[str, ...] = ()
    pending_options: tuple[str, ...] = ()
    tried: tuple[str, ...] = ()
    case_id: str | None = None
    seen_messages: tuple[str, ...] = ()
    last_event_id: str | None = None
    topic: str | None = None
    suspended: tuple[str, ...] = ()
    loop_count: int = 0
    last_text: str = ""
    last_polarities: tuple[str, ...] = ()
    tone: str = "basic"
    texts: tuple[str, ...] = ()
    identity_failures: int = 0
    ungrounded: int = 0
    #: Actions requested and not completed yet: (action id, intent, turn, frustration,
    #: confidence, sentiment label), so a result is decided on the state it was asked in.
    pending: tuple[tuple[str, ...], ...] = ()
    model: tuple[str, ...] = ()
    confidence: float = 0.0
    #: Workflow requests made and not failed, as ``action id|kind:key`` (e.g.
    #: ``...|password_reset:dana@acme.example``), so a confirmation does not repeat them.
    done: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ConversationState:
        if not data:
            return cls()
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {k: _tuples(v) for k, v in data.items() if k in known}
        return cls(**kwargs)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def next_frustration(previous: float, message: float) -> float:
    """Conversation-level frustration: spikes at once, decays slowly."""
    return round(max(message, 0.6 * previous + 0.4 * message), 6)


def case_id_for(tenant_id: str, conversation_id: str) -> str:
    return "case-" + uuid.uuid5(_CASE_NS, f"{tenant_id}/{conversation_id}").hex[:16]


def action_key(kind: str, params: dict[str, str] | Any) -> str:
    """What makes two workflow requests the same one (empty: not tracked)."""
    if kind == "password_reset":
        return f"password_reset:{params.get('email', '')}"
    if kind == "refund":
        return f"refund:{params.get('invoice', '')}"
    return ""


def evolve(state: ConversationState, event: Event) -> ConversationState:
    """The state after ``event``; unknown events leave it unchanged."""
    env = event.envelope
    base = state
    if not state.conversation_id:
        base = dataclasses.replace(
            state, tenant_id=env.tenant_id, conversation_id=env.conversation_id
        )
    if isinstance(event, ConversationStarted):
        return dataclasses.replace(
            base, status="open", channel=event.channel, last_event_id=env.event_id
        )
    if isinstance(event, MessageEnriched):
        if event.message_id in state.seen_messages:
            return state
        return _observe(base, event)
    if isinstance(event, DecisionMade):
        unclear = base.unclear_turns + 1 if event.action == "clarify" else 0
        tried = base.tried
        if event.action in ("reply", "clarify", "act"):
            tried = (*tried, f"{event.action}:{event.intent or 'none'}")[-HISTORY:]
        topic, suspended = _move_topic(base, event)
        return dataclasses.replace(
            base,
            unclear_turns=unclear,
            tried=tried,
            topic=topic,
            suspended=suspended,
            last_event_id=env.event_id,
        )
    if isinstance(event, ClarificationRequested):
        return dataclasses.replace(base, pending_options=event.options, last_event_id=env.event_id)
    if isinstance(event, CaseEscalated):
        return dataclasses.replace(
            base, status="escalated", case_id=event.case_id, last_event_id=env.event_id
        )
    if isinstance(event, ConversationClosed):
        return dataclasses.replace(base, status="closed", last_event_id=env.event_id)
    if isinstance(event, ActionRequested):
        asked = (
            event.action_id,
            event.intent,
            str(base.turn),
            str(base.frustration),
            str(base.confidence),
            "negative" if base.negative_streak else "neutral",
        )
        done = base.done
        key = action_key(event.kind, event.params)
        if key:
            done = (*done, f"{event.action_id}|{key}")[-HISTORY:]
        return dataclasses.replace(base, pending=(*base.pending, asked)[-MAX_PENDING:], done=done)
    if isinstance(event, ActionCompleted):
        if event.action_id in state.seen_messages:
            return state
        failures = base.identity_failures
        ungrounded = base.ungrounded
        if event.kind == "answer":
            ungrounded = ungrounded + 1 if event.outcome == "escalate" else 0
        if event.outcome == "identity_not_verified":
            failures += 1
        elif event.outcome == "password_reset_sent":
            failures = 0
        done = base.done
        if event.outcome not in SUCCEEDED:
            done = tuple(d for d in done if not d.startswith(f"{event.action_id}|"))
        return dataclasses.replace(
            base,
            done=done,
            tried=(*base.tried, f"{event.kind}:{event.outcome}")[-HISTORY:],
            identity_failures=failures,
            ungrounded=ungrounded,
            pending=tuple(p for p in base.pending if p[0] != event.action_id),
            seen_messages=(*base.seen_messages, event.action_id)[-SEEN:],
            last_event_id=env.event_id,
        )
    return state


def _observe(base: ConversationState, event: MessageEnriched) -> ConversationState:
    """Fold a customer message: sentiment trajectory, repeats, tone, conflict verbs."""
    s, text = event.sentiment, event.text
    intents = cues.fuse(event.intents, text, TOPICS, threshold_for).intents
    key = text_key(text)
    repeated = refers_back(text) or (bool(key) and key == base.last_text)
    return dataclasses.replace(
        base,
        status="open" if base.status == "new" else base.status,
        channel=event.channel,
        turn=base.turn + 1,
        frustration=next_frustration(base.frustration, s.frustration),
        negative_streak=base.negative_streak + 1 if s.label == "negative" else 0,
        valence_trajectory=(*base.valence_trajectory, s.valence)[-HISTORY:],
        frustration_trajectory=(*base.frustration_trajectory, s.frustration)[-HISTORY:],
        intent_history=(
            (*base.intent_history, intents[0].label)[-HISTORY:] if intents else base.intent_history
        ),
        seen_messages=(*base.seen_messages, event.message_id)[-SEEN:],
        loop_count=base.loop_count + 1 if repeated else 0,
        last_text=key,
        last_polarities=polarities(text),
        tone="technical" if technical_level(text) == "technical" else base.tone,
        texts=(*base.texts, text[:2000])[-HISTORY:],
        model=(event.model.name, event.model.version, event.model.sha256, *event.model.fallbacks),
        confidence=intents[0].score if intents else 0.0,
        last_event_id=event.envelope.event_id,
    )


Stack = tuple[str | None, tuple[str, ...]]


def _move_topic(state: ConversationState, event: DecisionMade) -> Stack:
    """The context stack after a decision: a switch suspends the current topic, a
    resumed topic leaves the stack, any other handled topic replaces the current one."""
    intent = event.intent
    if event.action not in ("reply", "act") or intent is None or intent not in TOPICS:
        return state.topic, state.suspended
    if intent == state.topic:
        return state.topic, state.suspended
    suspended = tuple(t for t in state.suspended if t != intent)
    if event.reason in ("context_switch", "multi_intent") and state.topic:
        suspended = (*suspended, state.topic)[-MAX_SUSPENDED:]
    return intent, suspended


def fold(state: ConversationState, events: Iterable[Event]) -> ConversationState:
    for event in events:
        state = evolve(state, event)
    return state
