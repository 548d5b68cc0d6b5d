"""Builders of the events the policy emits: decisions, replies, questions, escalations.

Each output event's envelope is caused by the input (a customer message or an action
result), so ids are derived, not random, and replay reproduces them byte for byte.
"""

from __future__ import annotations

from typing import Any

from events.actions import ActionCompleted
from events.base import Event, caused_envelope
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.enrichment import MessageEnriched, ModelInfo
from processors import replies
from processors.state import HISTORY, TOPICS, ConversationState, case_id_for
from processors.taxonomy import threshold_for

POLICY_VERSION = "policy-3"
PRODUCER = "processor.decide"


def caused(cause: Event, kind: type[Event]) -> Any:
    """The envelope of a ``kind`` event the decider emits because of ``cause`` (a message
    or an action result): its id derives from the cause's."""
    return caused_envelope(cause.envelope, kind, producer=PRODUCER, producer_version=POLICY_VERSION)


def reply_to(cause: Event, message_id: str, channel: str, text: str, kind: str) -> ReplyRequested:
    envelope = caused(cause, ReplyRequested)
    return ReplyRequested(
        envelope=envelope,
        reply_id=envelope.event_id,
        message_id=message_id,
        channel=channel,
        text=text,
        kind=kind,
    )


def reply(msg: MessageEnriched, text: str, kind: str) -> ReplyRequested:
    return reply_to(msg, msg.message_id, msg.channel, text, kind)


def clarify(msg: MessageEnriched, decision: DecisionMade, options: list[str]) -> list[Event]:
    question = replies.clarifying_question(options, decision.reason)
    return [
        decision,
        ClarificationRequested(
            envelope=caused(msg, ClarificationRequested),
            message_id=msg.message_id,
            question=question,
            options=tuple(options),
        ),
        reply(msg, question, "clarification"),
    ]


def escalate(
    state: ConversationState, msg: MessageEnriched, decision: Any, reason: str, frustration: float
) -> list[Event]:
    top = msg.intents[0].label if msg.intents else None
    intent = top if top in TOPICS else None
    intent = intent or state.topic or next(reversed(state.intent_history), None)
    if intent not in TOPICS:
        intent = None
    priority = "urgent" if frustration >= 0.9 else "high" if frustration >= 0.5 else "medium"
    trajectory = (*state.valence_trajectory, msg.sentiment.valence)[-HISTORY:]
    about = f" about {replies.describe(intent)}" if intent else ""
    earlier = f"; earlier topics: {', '.join(state.suspended)}" if state.suspended else ""
    summary = (
        f"Escalated ({reason.replace('_', ' ')}) at turn {state.turn + 1}{about}{earlier}; "
        f"frustration {frustration:.2f}; tried: {', '.join(state.tried) or 'nothing yet'}; "
        f"last message: {msg.text[:200]!r}"
    )
    origin = msg.envelope
    return [
        decision("escalate", reason, intent),
        CaseEscalated(
            envelope=caused(msg, CaseEscalated),
            case_id=state.case_id or case_id_for(origin.tenant_id, origin.conversation_id),
            message_id=msg.message_id,
            reason=reason,
            priority=priority,
            summary=summary,
            intent=intent,
            confidence=msg.intents[0].score if msg.intents else 0.0,
            sentiment_trajectory=trajectory,
            tried=state.tried,
            transcript_ref=f"conversations/{origin.tenant_id}/{origin.conversation_id}",
        ),
        reply(msg, replies.HANDOVER[reason], "handover"),
    ]


def result_reply(
    done: ActionCompleted, state: ConversationState, text: str, kind: str
) -> ReplyRequested:
    return reply_to(done, done.message_id, state.channel, text, kind)


def result_decision(
    state: ConversationState, done: ActionCompleted, action: str, reason: str
) -> DecisionMade:
    name, version, sha256, *fallbacks = (*state.model, "", "", "")[: max(3, len(state.model))]
    # decided on the state the action was requested in (a later message may be in already)
    asked = next((p for p in state.pending if p[0] == done.action_id), None)
    if asked is None:
        asked = ("", state.topic or "", str(state.turn), str(state.frustration))
        asked += (str(state.confidence), "negative" if state.negative_streak else "neutral")
    _, topic, turn, frustration, confidence, sentiment = asked
    intent = topic if topic in TOPICS else None
    return DecisionMade(
        envelope=caused(done, DecisionMade),
        message_id=done.message_id,
        action=action,
        reason=reason,
        intent=intent,
        confidence=float(confidence),
        threshold=threshold_for(intent) if intent else 1.0,
        sentiment_label=sentiment,
        frustration=float(frustration),
        turn=int(turn),
        policy_version=POLICY_VERSION,
        model=ModelInfo(name=name, version=version, sha256=sha256, fallbacks=tuple(fallbacks)),
    )


def escalate_result(state: ConversationState, done: ActionCompleted, reason: str) -> list[Event]:
    decision = result_decision(state, done, "escalate", reason)
    env = done.envelope
    intent = decision.intent
    about = f" about {replies.describe(intent)}" if intent else ""
    tried = (*state.tried, f"{done.kind}:{done.outcome}")
    summary = (
        f"Escalated ({reason.replace('_', ' ')}) at turn {decision.turn}{about} after the "
        f"{done.kind} action ({done.outcome}: {done.reason or 'no detail'}); "
        f"frustration {decision.frustration:.2f}; tried: {', '.join(tried)}"
    )
    f = decision.frustration
    return [
        decision,
        CaseEscalated(
            envelope=caused(done, CaseEscalated),
            case_id=state.case_id or case_id_for(env.tenant_id, env.conversation_id),
            message_id=done.message_id,
            reason=reason,
            priority="urgent" if f >= 0.9 else "high" if f >= 0.5 else "medium",
            summary=summary,
            intent=intent,
            confidence=state.confidence,
            sentiment_trajectory=state.valence_trajectory,
            tried=tried[-HISTORY:],
            transcript_ref=f"conversations/{env.tenant_id}/{env.conversation_id}",
        ),
        result_reply(done, state, replies.HANDOVER[reason], "handover"),
    ]
