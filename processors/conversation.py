"""The conversation policy: ``decide(state, event) -> events`` and ``evolve(state, event)``.

Pure functions over immutable values. Everything the policy knows about a message
arrives in ``MessageEnriched`` (model scores, flags, text, model version), so replaying
the same events yields byte-identical decisions. ``handle`` is what both drivers call:
it decides, then folds the input and the outputs into the new state.

The rules, first match wins: an explicit request for a person; a loop (the same or a
contentless back-reference, repeated); frustration (a spike, frustration that stays
high, or a customer who sours); conflicting requests; the context stack (resume a
suspended topic, carry the current topic over a follow-up, acknowledge a closing);
off-topic (a polite decline); then the intents (multi-intent, ambiguity, per-category
thresholds, a confident switch of topic).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from events.actions import ActionCompleted, ActionRequested
from events.base import Event, caused_envelope
from events.conversation import ConversationClosed, ConversationStarted
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.enrichment import MessageEnriched, ModelInfo
from processors import actions, replies
from processors.taxonomy import (
    AMBIGUITY_MARGIN,
    HUMAN_REQUEST,
    OUT_OF_SCOPE,
    asks_about_bot,
    asks_for_human,
    category_of,
    conflict,
    is_closing,
    is_follow_up,
    joins_requests,
    mentions_human,
    polarities,
    refers_back,
    resumes,
    technical_level,
    text_key,
    threshold_for,
    topic_labels,
)

TOPICS = frozenset(topic_labels())
POLICY_VERSION = "policy-2"
PRODUCER = "processor.decide"
#: One message this frustrated escalates at once; from 0.7 when the previous turn was
#: negative too (frustration that stays high).
FRUSTRATION_SPIKE = 0.8
FRUSTRATION_ESCALATE = 0.7
#: Consecutive negative turns that escalate while conversation frustration is this high.
NEGATIVE_STREAK_ESCALATE = 3
STREAK_FRUSTRATION = 0.5
#: A customer who sours: from this turn on, a negative message whose frustration is
#: ``TREND_RISE`` above the mean of the previous three turns (and at least TREND_LEVEL).
TREND_MIN_TURN = 4
TREND_RISE = 0.2
TREND_LEVEL = 0.55
#: Repeated or contentless back-references: change strategy at the first, escalate at the
#: second count.
LOOP_DETECT = 2
LOOP_ESCALATE = 3
#: Both top intents at least this strong, from different categories, joined by "and
#: also"-like words: a multi-intent message, answered in order.
MULTI_INTENT_MIN = 0.25
#: Off-topic is declined when the model is this sure and the message says something;
#: a vague or contentless message ("it doesn't work", "AAAA...") gets a question instead.
OFF_TOPIC_MIN = 0.2
OFF_TOPIC_WORDS = 4
MAX_UNCLEAR_TURNS = 2
MAX_SUSPENDED = 5
HISTORY = 10
#: Message ids remembered to drop a message delivered twice (retries, redelivery).
SEEN = 32
#: Requested actions remembered until their result arrives.
MAX_PENDING = 8
#: Consecutive answers the knowledge base could not ground before one escalates.
UNGROUNDED_ESCALATE = 1
#: Reasons whose answer is never an action (neither half of a conflict is acted on).
NO_ACTION = frozenset({"conflict_topic", "acknowledged", "out_of_scope"})
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


# --- decide ---------------------------------------------------------------------------


def decide(state: ConversationState, event: Event) -> list[Event]:
    """The events the agent emits in response to ``event`` given ``state``."""
    if isinstance(event, ActionCompleted):
        if event.action_id in state.seen_messages:
            return []
        return _decide_result(state, event)
    if not isinstance(event, MessageEnriched) or event.message_id in state.seen_messages:
        return []
    return _decide_message(state, event)


class _Turn:
    """One message being decided: the state before and after it, and decision builders."""

    def __init__(self, state: ConversationState, msg: MessageEnriched) -> None:
        self.state = state
        self.after = evolve(state, msg)
        self.msg = msg
        self.text = msg.text
        self.top = msg.intents[0] if msg.intents else None
        self.second = msg.intents[1] if len(msg.intents) > 1 else None
        self.confidence = self.top.score if self.top else 0.0
        self.threshold = threshold_for(self.top.label) if self.top else 1.0
        self.requests = 0

    def decision(self, action: str, reason: str, intent: str | None) -> DecisionMade:
        msg, after = self.msg, self.after
        threshold = threshold_for(intent) if intent and intent in TOPICS else self.threshold
        return DecisionMade(
            envelope=_env(msg, DecisionMade),
            message_id=msg.message_id,
            action=action,
            reason=reason,
            intent=intent,
            confidence=self.confidence,
            threshold=threshold,
            sentiment_label=msg.sentiment.label,
            frustration=after.frustration,
            turn=after.turn,
            policy_version=POLICY_VERSION,
            model=msg.model,
        )

    def answer(self, reason: str, intent: str, text: str | None = None) -> list[Event]:
        """A topic answer: an action (a workflow, or a knowledge-base answer) when one
        applies, else ``text`` or the topic's template."""
        request = self.request(reason, intent, workflows_only=text is not None)
        if request is not None:
            action = "reply" if request.kind == "answer" else "act"
            return [self.decision(action, reason, intent), request]
        body = text or replies.answer_for(intent, self.after.tone)
        return [self.decision("reply", reason, intent), _reply(self.msg, body, "answer")]

    def request(self, reason: str, intent: str, *, workflows_only: bool) -> ActionRequested | None:
        if intent not in TOPICS or intent == OUT_OF_SCOPE or reason in NO_ACTION:
            return None
        at = self.msg.envelope.occurred_at.isoformat()
        kind, params = actions.plan(self.state.texts, self.text, intent, at)
        if kind == "answer" and workflows_only:
            return None
        env = caused_envelope(
            self.msg.envelope,
            ActionRequested,
            producer=PRODUCER,
            producer_version=POLICY_VERSION,
            index=self.requests,
        )
        self.requests += 1
        return ActionRequested(
            envelope=env,
            action_id=env.event_id,
            message_id=self.msg.message_id,
            kind=kind,
            params=params,
            intent=intent,
            technical_level=self.after.tone,
        )

    def acknowledge(self) -> list[Event]:
        return [
            self.decision("reply", "acknowledged", None),
            _reply(self.msg, replies.CLOSING, "answer"),
        ]

    def clarify(self, reason: str, intent: str | None, options: list[str]) -> list[Event]:
        return _clarify(self.msg, self.decision("clarify", reason, intent), options)

    def escalate(self, reason: str) -> list[Event]:
        return _escalate(self.state, self.msg, self.decision, reason, self.after.frustration)


def _decide_message(state: ConversationState, msg: MessageEnriched) -> list[Event]:
    t = _Turn(state, msg)
    if state.status == "escalated":
        top = t.top.label if t.top else None
        return [
            t.decision("escalate", "awaiting_human", top),
            _reply(msg, replies.HANDOVER["awaiting_human"], "acknowledgement"),
        ]
    for rule in (_human, _loop, _frustration, _conflict, _context, _out_of_scope):
        out = rule(t)
        if out is not None:
            return out
    return _by_intent(t)


def _human(t: _Turn) -> list[Event] | None:
    """An explicit request for a person; the model's human_request on a short
    confirmation ("yes send it") without any word for a person is not one."""
    said = asks_for_human(t.text)
    modelled = HUMAN_REQUEST in t.msg.flags or (t.top is not None and t.top.label == HUMAN_REQUEST)
    if said or (modelled and mentions_human(t.text)):
        return t.escalate("explicit_human_request")
    return None


def _loop(t: _Turn) -> list[Event] | None:
    count = t.after.loop_count
    if count >= LOOP_ESCALATE:
        return t.escalate("loop_detected")
    if count >= LOOP_DETECT:
        options = _loop_options(t)
        return t.clarify("loop_detected", t.state.topic, options)
    return None


def _loop_options(t: _Turn) -> list[str]:
    """A different strategy: offer the topics we know of instead of guessing again."""
    known = [*([t.state.topic] if t.state.topic else []), *reversed(t.state.suspended)]
    known += [i.label for i in t.msg.intents if i.label in TOPICS]
    return list(dict.fromkeys(known))[:3]


def _frustration(t: _Turn) -> list[Event] | None:
    s, before, after = t.msg.sentiment, t.state, t.after
    if s.label != "negative":
        return None
    previous_negative = before.negative_streak > 0
    if s.frustration >= FRUSTRATION_SPIKE or (
        s.frustration >= FRUSTRATION_ESCALATE and previous_negative
    ):
        return t.escalate("customer_frustrated")
    if after.negative_streak >= NEGATIVE_STREAK_ESCALATE and after.frustration >= (
        STREAK_FRUSTRATION
    ):
        return t.escalate("customer_frustrated")
    earlier = before.frustration_trajectory[-3:]
    if (
        after.turn >= TREND_MIN_TURN
        and len(earlier) == 3
        and s.frustration >= TREND_LEVEL
        and s.frustration - sum(earlier) / 3 >= TREND_RISE
    ):
        return t.escalate("negative_trajectory")
    return None


def _conflict(t: _Turn) -> list[Event] | None:
    pair = conflict(t.text, t.state.last_polarities)
    if pair is None:
        return None
    on, off = pair.split("/")
    topic = t.top.label if t.top and t.top.label in TOPICS else t.state.topic
    ask = t.clarify("conflict", topic, [on, off])
    if topic is None or topic == t.state.topic:
        return ask
    # the topic is known, the request is not: say what applies, then ask which one
    return [*t.answer("conflict_topic", topic), *ask]


def _context(t: _Turn) -> list[Event] | None:
    """Resume a suspended topic, carry the current one over a follow-up, or close it."""
    state, top = t.state, t.top
    labels = [i.label for i in t.msg.intents]
    if state.suspended:
        back = next((lbl for lbl in labels[:3] if lbl in state.suspended), None)
        if resumes(t.text) or (back is not None and labels and labels[0] == back):
            target = back or state.suspended[-1]
            return t.answer("context_resumed", target)
    topic = state.topic
    if topic is None:
        return None
    confident_elsewhere = (
        top is not None
        and top.label in TOPICS
        and top.score >= t.threshold
        and category_of(top.label) != category_of(topic)
        and len(t.text.split()) > 6
    )
    if confident_elsewhere:
        return None
    if is_follow_up(t.text):
        return t.answer("follow_up", topic, replies.follow_up(topic, t.after.tone))
    if is_closing(t.text):
        return t.answer("acknowledged", topic, replies.CLOSING)
    if top is not None and top.label == OUT_OF_SCOPE:
        return None  # off-topic mid-conversation: declined below
    if top is None or top.label not in TOPICS or top.score < t.threshold:
        # nothing confidently new: the customer is still on the current topic
        return t.answer("follow_up", topic, replies.follow_up(topic, t.after.tone))
    return None


def _out_of_scope(t: _Turn) -> list[Event] | None:
    top = t.top
    if top is not None and top.label in (OUT_OF_SCOPE, HUMAN_REQUEST) and is_closing(t.text):
        return t.acknowledge()
    off_topic = top is not None and top.label == OUT_OF_SCOPE and top.score >= OFF_TOPIC_MIN
    if asks_about_bot(t.text) or (off_topic and len(t.text.split()) >= OFF_TOPIC_WORDS):
        return t.answer("out_of_scope", OUT_OF_SCOPE, replies.DECLINE)
    return None


def _by_intent(t: _Turn) -> list[Event]:
    state, top, second = t.state, t.top, t.second
    if top is None or top.label not in TOPICS:
        if state.unclear_turns + 1 > MAX_UNCLEAR_TURNS:
            return t.escalate("low_confidence")
        return t.clarify("no_intent", None, [])
    if (
        second is not None
        and second.label in TOPICS
        and top.score >= MULTI_INTENT_MIN
        and second.score >= MULTI_INTENT_MIN
        and category_of(top.label) != category_of(second.label)
        and joins_requests(t.text)
    ):
        return [*t.answer("multi_intent", top.label), *t.answer("multi_intent", second.label)]
    if second is not None and top.score - second.score < AMBIGUITY_MARGIN:
        return t.clarify("ambiguous_intents", top.label, [top.label, second.label])
    if t.confidence >= t.threshold:
        switched = state.topic is not None and category_of(state.topic) != category_of(top.label)
        return t.answer("context_switch" if switched else "confident_intent", top.label)
    if state.unclear_turns + 1 > MAX_UNCLEAR_TURNS:
        return t.escalate("low_confidence")
    return t.clarify("below_threshold", top.label, [top.label])


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
    question = replies.clarifying_question(options, decision.reason)
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


def _decide_result(state: ConversationState, done: ActionCompleted) -> list[Event]:
    """Tell the customer an action's result, ask again, or escalate.

    For ``kind="answer"`` the act stage has replied itself. An answer it could not ground
    falls back to the topic's template the first time and escalates (``low_confidence``)
    when the next answer cannot be grounded either; a failed one falls back too.
    """
    asked = next((p for p in state.pending if p[0] == done.action_id), None)
    topic = asked[1] if asked else state.topic or ""
    if done.kind == "answer":
        if done.outcome == "escalate" and state.status != "escalated":
            if state.ungrounded >= UNGROUNDED_ESCALATE:
                return _escalate_result(state, done, "low_confidence")
            return [_result_reply(done, state, replies.answer_for(topic, state.tone), "answer")]
        if done.outcome == "error":
            return [_result_reply(done, state, replies.answer_for(topic, state.tone), "answer")]
        return []
    verdict = actions.result_reply(done, state.identity_failures, state.tone)
    if verdict.action == "escalate":
        return [] if state.status == "escalated" else _escalate_result(state, done, verdict.reason)
    if verdict.action == "clarify":
        decision = _result_decision(state, done, "clarify", verdict.reason)
        return [
            decision,
            ClarificationRequested(
                envelope=_caused(done, ClarificationRequested),
                message_id=done.message_id,
                question=verdict.text,
                options=(),
            ),
            _result_reply(done, state, verdict.text, "clarification"),
        ]
    text = verdict.text or replies.answer_for(topic, state.tone)
    return [_result_reply(done, state, text, "answer")]


def _caused(done: ActionCompleted, kind: type[Event]) -> Any:
    return caused_envelope(done.envelope, kind, producer=PRODUCER, producer_version=POLICY_VERSION)


def _result_reply(
    done: ActionCompleted, state: ConversationState, text: str, kind: str
) -> ReplyRequested:
    env = _caused(done, ReplyRequested)
    return ReplyRequested(
        envelope=env,
        reply_id=env.event_id,
        message_id=done.message_id,
        channel=state.channel,
        text=text,
        kind=kind,
    )


def _result_decision(
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
        envelope=_caused(done, DecisionMade),
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


def _escalate_result(state: ConversationState, done: ActionCompleted, reason: str) -> list[Event]:
    decision = _result_decision(state, done, "escalate", reason)
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
            envelope=_caused(done, CaseEscalated),
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
        _result_reply(done, state, replies.HANDOVER[reason], "handover"),
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
        return dataclasses.replace(base, pending=(*base.pending, asked)[-MAX_PENDING:])
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
        return dataclasses.replace(
            base,
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
            (*base.intent_history, event.intents[0].label)[-HISTORY:]
            if event.intents
            else base.intent_history
        ),
        seen_messages=(*base.seen_messages, event.message_id)[-SEEN:],
        loop_count=base.loop_count + 1 if repeated else 0,
        last_text=key,
        last_polarities=polarities(text),
        tone="technical" if technical_level(text) == "technical" else base.tone,
        texts=(*base.texts, text[:2000])[-HISTORY:],
        model=(event.model.name, event.model.version, event.model.sha256, *event.model.fallbacks),
        confidence=event.intents[0].score if event.intents else 0.0,
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


def handle(state: ConversationState, event: Event) -> tuple[ConversationState, list[Event]]:
    """Decide on ``event`` and return the new state (input and outputs folded in).

    A message already in the state (delivered twice) yields nothing and changes
    nothing. The live driver writes a state only after the outputs it came with are
    acknowledged by Kafka, so a message in the state always has its outputs on the log.
    """
    outputs = decide(state, event)
    return fold(state, [event, *outputs]), outputs
