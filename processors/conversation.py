"""The conversation policy: ``decide(state, event) -> events`` and ``evolve(state, event)``.

Pure functions over immutable values. Everything the policy knows about a message
arrives in ``MessageEnriched`` (model scores, flags, model version), so replaying the
same events yields byte-identical decisions. ``handle`` is what both drivers call: it
decides, then folds the input and the outputs into the new state.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from events.base import Event, caused_envelope
from events.conversation import ConversationClosed, ConversationStarted
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.enrichment import MessageEnriched
from processors import replies
from processors.taxonomy import (
    AMBIGUITY_MARGIN,
    HUMAN_REQUEST,
    OUT_OF_SCOPE,
    threshold_for,
)

POLICY_VERSION = "policy-1"
PRODUCER = "processor.decide"
FRUSTRATION_ESCALATE = 0.7
NEGATIVE_STREAK_ESCALATE = 3
MAX_UNCLEAR_TURNS = 2
HISTORY = 10
#: Message ids remembered to drop a message delivered twice (retries, redelivery).
SEEN = 32
_CASE_NS = uuid.UUID("0b7d2c58-1f0e-4c3a-9e7a-636173657300")


@dataclass(frozen=True, slots=True)
class ConversationState:
    """Everything the policy remembers about one conversation."""

    tenant_id: str = ""
    conversation_id: str = ""
    status: str = "new"  # new | open | escalated | closed
    channel: str = "web_chat"
    turn: int = 0
    frustration: float = 0.0
    negative_streak: int = 0
    unclear_turns: int = 0
    valence_trajectory: tuple[float, ...] = ()
    intent_history: tuple[str, ...] = ()
    pending_options: tuple[str, ...] = ()
    tried: tuple[str, ...] = ()
    case_id: str | None = None
    seen_messages: tuple[str, ...] = ()
    last_event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ConversationState:
        if not data:
            return cls()
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**kwargs)  # type: ignore[arg-type]


def next_frustration(previous: float, message: float) -> float:
    """Conversation-level frustration: spikes at once, decays slowly."""
    return round(max(message, 0.6 * previous + 0.4 * message), 6)


def case_id_for(tenant_id: str, conversation_id: str) -> str:
    return "case-" + uuid.uuid5(_CASE_NS, f"{tenant_id}/{conversation_id}").hex[:16]


# --- decide ---------------------------------------------------------------------------


def decide(state: ConversationState, event: Event) -> list[Event]:
    """The events the agent emits in response to ``event`` given ``state``."""
    if not isinstance(event, MessageEnriched) or event.message_id in state.seen_messages:
        return []
    return _decide_message(state, event)


def _decide_message(state: ConversationState, msg: MessageEnriched) -> list[Event]:
    frustration = next_frustration(state.frustration, msg.sentiment.frustration)
    negative_streak = state.negative_streak + 1 if msg.sentiment.label == "negative" else 0
    top = msg.intents[0] if msg.intents else None
    second = msg.intents[1] if len(msg.intents) > 1 else None
    confidence = top.score if top else 0.0
    threshold = threshold_for(top.label) if top else 1.0
    turn = state.turn + 1

    def decision(action: str, reason: str, intent: str | None) -> DecisionMade:
        return DecisionMade(
            envelope=_env(msg, DecisionMade),
            message_id=msg.message_id,
            action=action,
            reason=reason,
            intent=intent,
            confidence=confidence,
            threshold=threshold,
            sentiment_label=msg.sentiment.label,
            frustration=frustration,
            turn=turn,
            policy_version=POLICY_VERSION,
            model=msg.model,
        )

    if state.status == "escalated":
        return [
            decision("escalate", "awaiting_human", top.label if top else None),
            _reply(msg, replies.HANDOVER["awaiting_human"], "acknowledgement"),
        ]
    if HUMAN_REQUEST in msg.flags or (top is not None and top.label == HUMAN_REQUEST):
        return _escalate(state, msg, decision, "explicit_human_request", frustration)
    if frustration >= FRUSTRATION_ESCALATE or negative_streak >= NEGATIVE_STREAK_ESCALATE:
        return _escalate(state, msg, decision, "customer_frustrated", frustration)
    if top is not None and top.label == OUT_OF_SCOPE:
        return _escalate(state, msg, decision, "out_of_scope", frustration)
    if top is None:
        if state.unclear_turns + 1 > MAX_UNCLEAR_TURNS:
            return _escalate(state, msg, decision, "low_confidence", frustration)
        return _clarify(msg, decision("clarify", "no_intent", None), [])
    if second is not None and top.score - second.score < AMBIGUITY_MARGIN:
        options = [top.label, second.label]
        return _clarify(msg, decision("clarify", "ambiguous_intents", top.label), options)
    if confidence >= threshold:
        return [
            decision("reply", "confident_intent", top.label),
            _reply(msg, replies.answer_for(top.label), "answer"),
        ]
    if state.unclear_turns + 1 > MAX_UNCLEAR_TURNS:
        return _escalate(state, msg, decision, "low_confidence", frustration)
    return _clarify(msg, decision("clarify", "below_threshold", top.label), [top.label])


def _env(msg: MessageEnriched, kind: type[Event]) -> Any:
    return caused_envelope(msg.envelope, kind, producer=PRODUCER, producer_version=POLICY_VERSION)


def _reply(msg: MessageEnriched, text: str, kind: str) -> ReplyRequested:
    env = _env(msg, ReplyRequested)
    return ReplyRequested(
        envelope=env,
        reply_id=env.event_id,
        message_id=msg.message_id,
        channel=msg.channel,
        text=text,
        kind=kind,
    )


def _clarify(msg: MessageEnriched, decision: DecisionMade, options: list[str]) -> list[Event]:
    question = replies.clarifying_question(options)
    return [
        decision,
        ClarificationRequested(
            envelope=_env(msg, ClarificationRequested),
            message_id=msg.message_id,
            question=question,
            options=tuple(options),
        ),
        _reply(msg, question, "clarification"),
    ]


def _escalate(
    state: ConversationState, msg: MessageEnriched, decision: Any, reason: str, frustration: float
) -> list[Event]:
    top = msg.intents[0].label if msg.intents else None
    intent = None if top in (HUMAN_REQUEST, OUT_OF_SCOPE) else top
    intent = intent or next((i for i in reversed(state.intent_history)), None)
    priority = "urgent" if frustration >= 0.9 else "high" if frustration >= 0.5 else "medium"
    trajectory = (*state.valence_trajectory, msg.sentiment.valence)[-HISTORY:]
    about = f" about {replies.describe(intent)}" if intent else ""
    summary = (
        f"Escalated ({reason.replace('_', ' ')}) at turn {state.turn + 1}{about}; "
        f"frustration {frustration:.2f}; last message: {msg.text[:200]!r}"
    )
    env = msg.envelope
    return [
        decision("escalate", reason, intent),
        CaseEscalated(
            envelope=_env(msg, CaseEscalated),
            case_id=state.case_id or case_id_for(env.tenant_id, env.conversation_id),
            message_id=msg.message_id,
            reason=reason,
            priority=priority,
            summary=summary,
            intent=intent,
            confidence=msg.intents[0].score if msg.intents else 0.0,
            sentiment_trajectory=trajectory,
            tried=state.tried,
            transcript_ref=f"conversations/{env.tenant_id}/{env.conversation_id}",
        ),
        _reply(msg, replies.HANDOVER[reason], "handover"),
    ]


# --- evolve ---------------------------------------------------------------------------


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
        s = event.sentiment
        return dataclasses.replace(
            base,
            status="open" if base.status == "new" else base.status,
            channel=event.channel,
            turn=base.turn + 1,
            frustration=next_frustration(base.frustration, s.frustration),
            negative_streak=base.negative_streak + 1 if s.label == "negative" else 0,
            valence_trajectory=(*base.valence_trajectory, s.valence)[-HISTORY:],
            intent_history=(
                (*base.intent_history, event.intents[0].label)[-HISTORY:]
                if event.intents
                else base.intent_history
            ),
            seen_messages=(*base.seen_messages, event.message_id)[-SEEN:],
            last_event_id=env.event_id,
        )
    if isinstance(event, DecisionMade):
        unclear = base.unclear_turns + 1 if event.action == "clarify" else 0
        tried = base.tried
        if event.action in ("reply", "clarify"):
            tried = (*tried, f"{event.action}:{event.intent or 'none'}")[-HISTORY:]
        return dataclasses.replace(
            base, unclear_turns=unclear, tried=tried, last_event_id=env.event_id
        )
    if isinstance(event, ClarificationRequested):
        return dataclasses.replace(base, pending_options=event.options, last_event_id=env.event_id)
    if isinstance(event, CaseEscalated):
        return dataclasses.replace(
            base, status="escalated", case_id=event.case_id, last_event_id=env.event_id
        )
    if isinstance(event, ConversationClosed):
        return dataclasses.replace(base, status="closed", last_event_id=env.event_id)
    return state


def fold(state: ConversationState, events: Iterable[Event]) -> ConversationState:
    for event in events:
        state = evolve(state, event)
    return state


def handle(state: ConversationState, event: Event) -> tuple[ConversationState, list[Event]]:
    """Decide on ``event`` and return the new state (input and outputs folded in).

    A message already in the state (delivered twice) yields nothing and changes
    nothing. The live driver writes a state only after the outputs it came with are
    acknowledged by Kafka, so a message in the state always has its outputs on the log.
    """
    outputs = decide(state, event)
    return fold(state, [event, *outputs]), outputs
