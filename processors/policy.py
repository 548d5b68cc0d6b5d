"""The conversation policy for a customer message: the rules, first match wins. Pure.

An explicit request for a person; a loop (the same or a contentless back-reference,
repeated); frustration (a spike, frustration that stays high, or a customer who sours);
conflicting requests; an injection attempt with no real question (a safe refusal); a
legal or licensing commitment (a person answers); the context stack (resume a suspended
topic, carry the current topic over a follow-up, acknowledge a closing); off-topic (a
polite decline); then the intents (multi-intent, ambiguity, per-category thresholds, a
confident switch of topic).

The intents are the model's fused with the text's topic cues (:mod:`processors.cues`):
a label the text names decisively ranks first, and agreeing evidence raises the score the
per-category thresholds are applied to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from events.actions import ActionRequested
from events.base import Event, caused_envelope
from events.decisions import DecisionMade
from events.enrichment import IntentScore, MessageEnriched
from processors import actions, cues, replies
from processors.emit import POLICY_VERSION, PRODUCER, caused, clarify, escalate, reply
from processors.extract import emails
from processors.state import TOPICS, ConversationState, evolve
from processors.taxonomy import (
    AMBIGUITY_MARGIN,
    HUMAN_REQUEST,
    OUT_OF_SCOPE,
    asks_about_bot,
    asks_commitment,
    asks_for_human,
    category_of,
    conflict,
    is_closing,
    is_follow_up,
    joins_requests,
    mentions_human,
    resumes,
    switches,
    threshold_for,
)

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
#: A message longer than this many words that names another topic is a new request even
#: without a "by the way".
SWITCH_WORDS = 6
#: Reasons whose answer is never an action (neither half of a conflict is acted on).
NO_ACTION = frozenset({"conflict_topic", "acknowledged", "out_of_scope"})
#: Risk flags whose message, without a real question, gets a safe refusal.
INJECTION_FLAGS = ("prompt_injection", "sql_injection")
SPECIAL = (OUT_OF_SCOPE, HUMAN_REQUEST)
#: Topics whose workflow an email address completes (a password reset).
PASSWORD = "ACCOUNT/Password"
NEEDS_EMAIL = (PASSWORD, "ACCOUNT/Access")


class Turn:
    """One message being decided: the state before and after it, and decision builders."""

    def __init__(self, state: ConversationState, msg: MessageEnriched) -> None:
        self.state = state
        self.after = evolve(state, msg)
        self.msg = msg
        self.text = msg.text
        fused = cues.fuse(msg.intents, msg.text, TOPICS, threshold_for)
        self.intents = fused.intents
        self.named = fused.decisive
        self.named_weight = fused.weight
        self.cue = fused.cue
        self.top = self.intents[0] if self.intents else None
        self.second = self.intents[1] if len(self.intents) > 1 else None
        self.confidence = self.top.score if self.top else 0.0
        self.threshold = threshold_for(self.top.label) if self.top else 1.0
        self.requests = 0

    def model_ranks(self, label: str, n: int = 2) -> bool:
        """The model itself has ``label`` among its top ``n`` intents."""
        return any(i.label == label for i in self.msg.intents[:n])

    def decision(self, action: str, reason: str, intent: str | None) -> DecisionMade:
        msg, after = self.msg, self.after
        threshold = threshold_for(intent) if intent and intent in TOPICS else self.threshold
        return DecisionMade(
            envelope=caused(msg, DecisionMade),
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

    def answer(
        self, reason: str, intent: str, text: str | None = None, *, part: str | None = None
    ) -> list[Event]:
        """A topic answer: an action (a workflow, or a knowledge-base answer) when one
        applies, else ``text`` or the topic's template. ``part`` is the part of the
        message about ``intent`` (one request of a multi-intent message): the
        knowledge base is asked about it alone."""
        request = self.request(reason, intent, workflows_only=text is not None, part=part)
        if isinstance(request, str):
            return [self.decision("reply", reason, intent), reply(self.msg, request, "answer")]
        if request is not None:
            action = "reply" if request.kind == "answer" else "act"
            if request.kind == "password_reset" and intent != PASSWORD:
                # a locked-out customer who takes the reset: the topic is the password now
                intent = PASSWORD
                request = dataclasses.replace(request, intent=PASSWORD)
            more: list[Event] = []
            if request.kind == "api_diagnosis":
                at = self.msg.envelope.occurred_at.isoformat()
                more = [
                    self.make_request(intent, "api_diagnosis", params)
                    for params in actions.separate_problems(self.text, at)
                ]
            return [self.decision(action, reason, intent), request, *more]
        body = text or replies.answer_for(intent, self.after.tone)
        return [self.decision("reply", reason, intent), reply(self.msg, body, "answer")]

    def request(
        self, reason: str, intent: str, *, workflows_only: bool, part: str | None = None
    ) -> ActionRequested | str | None:
        """The action for a topic answer; a text when the workflow already ran."""
        if intent not in TOPICS or intent == OUT_OF_SCOPE or reason in NO_ACTION:
            return None
        at = self.msg.envelope.occurred_at.isoformat()
        kind, params = actions.plan(self.state.texts, self.text, intent, at, self.state.done)
        if kind == "none":
            return params.get("reply") or None
        if kind == "answer" and workflows_only:
            return None
        if kind == "answer" and part:
            params = {**params, "question": part}
        return self.make_request(intent, kind, params)

    def make_request(self, intent: str, kind: str, params: dict[str, str]) -> ActionRequested:
        envelope = caused_envelope(
            self.msg.envelope,
            ActionRequested,
            producer=PRODUCER,
            producer_version=POLICY_VERSION,
            index=self.requests,
        )
        self.requests += 1
        return ActionRequested(
            envelope=envelope,
            action_id=envelope.event_id,
            message_id=self.msg.message_id,
            kind=kind,
            params=params,
            intent=intent,
            technical_level=self.after.tone,
            channel=self.msg.channel,
        )

    def acknowledge(self) -> list[Event]:
        return [
            self.decision("reply", "acknowledged", None),
            reply(self.msg, replies.CLOSING, "answer"),
        ]

    def clarify(self, reason: str, intent: str | None, options: list[str]) -> list[Event]:
        return clarify(self.msg, self.decision("clarify", reason, intent), options)

    def escalate(self, reason: str) -> list[Event]:
        return escalate(self.state, self.msg, self.decision, reason, self.after.frustration)


Rule = Callable[[Turn], "list[Event] | None"]


def decide_message(state: ConversationState, msg: MessageEnriched) -> list[Event]:
    t = Turn(state, msg)
    if state.status == "escalated":
        top = t.top.label if t.top else None
        return [
            t.decision("escalate", "awaiting_human", top),
            reply(msg, replies.HANDOVER["awaiting_human"], "acknowledgement"),
        ]
    rules: tuple[Rule, ...] = (
        _human,
        _loop,
        _frustration,
        _conflict,
        _injection,
        _commitment,
        _context,
        _out_of_scope,
    )
    for rule in rules:
        out = rule(t)
        if out is not None:
            return out
    return _by_intent(t)


def _human(t: Turn) -> list[Event] | None:
    """An explicit request for a person; the model's human_request on a short
    confirmation ("yes send it") without any word for a person is not one."""
    said = asks_for_human(t.text)
    top = t.msg.intents[0] if t.msg.intents else None
    modelled = HUMAN_REQUEST in t.msg.flags or (top is not None and top.label == HUMAN_REQUEST)
    if said or (modelled and mentions_human(t.text)):
        return t.escalate("explicit_human_request")
    return None


def _loop(t: Turn) -> list[Event] | None:
    count = t.after.loop_count
    if count >= LOOP_ESCALATE:
        return t.escalate("loop_detected")
    if count >= LOOP_DETECT:
        return t.clarify("loop_detected", t.state.topic, _loop_options(t))
    return None


def _loop_options(t: Turn) -> list[str]:
    """A different strategy: offer the topics we know of instead of guessing again."""
    known = [*([t.state.topic] if t.state.topic else []), *reversed(t.state.suspended)]
    known += [i.label for i in t.intents if i.label in TOPICS]
    return list(dict.fromkeys(known))[:3]


def _frustration(t: Turn) -> list[Event] | None:
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


def _conflict(t: Turn) -> list[Event] | None:
    pair = conflict(t.text, t.state.last_polarities)
    if pair is None:
        return None
    on, off = pair.split("/")
    topic = t.top.label if t.top and t.top.label in TOPICS else t.state.topic
    if t.state.topic is not None and t.named is None and t.text.lower().startswith(("and", "also")):
        topic = t.state.topic  # "and also turn it off": still the same thing
    ask = t.clarify("conflict", topic, [on, off])
    if topic is None or topic == t.state.topic:
        return ask
    # the topic is known, the request is not: say what applies, then ask which one
    return [*t.answer("conflict_topic", topic), *ask]


def _injection(t: Turn) -> list[Event] | None:
    """An attempt to change the agent's instructions or run code, with no topic the text
    names: answered with a safe refusal (recorded with the flag as the reason)."""
    found = [f for f in INJECTION_FLAGS if f in t.msg.flags]
    if not found or t.named is not None:
        return None
    return [
        t.decision("reply", found[0], None),
        reply(t.msg, replies.INJECTION_REFUSAL, "answer"),
    ]


def _commitment(t: Turn) -> list[Event] | None:
    """A legal, compliance or licensing commitment (sign a BAA, an on-premise licence, a
    custom quote): the knowledge base cannot promise it, so a person answers."""
    return t.escalate("low_confidence") if asks_commitment(t.text) else None


def _context(t: Turn) -> list[Event] | None:
    """Resume a suspended topic, carry the current one over a follow-up, or close it."""
    state, top = t.state, t.top
    labels = [i.label for i in t.intents]
    if state.suspended:
        back = next((lbl for lbl in labels[:3] if lbl in state.suspended), None)
        if t.cue in state.suspended and t.cue != state.topic:
            back = t.cue  # the text names the topic the customer left
        if resumes(t.text) or (back is not None and labels and labels[0] == back) or back == t.cue:
            target = back or state.suspended[-1]
            return t.answer("context_resumed", target)
        waiting = next((s for s in reversed(state.suspended) if s in NEEDS_EMAIL), None)
        if waiting and state.topic not in NEEDS_EMAIL and emails(t.text) and t.named is None:
            return t.answer("context_resumed", waiting)  # the address the reset waited for
    topic = state.topic
    if topic is None:
        return _answers_question(t)
    if _switches_topic(t, topic):
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


def _answers_question(t: Turn) -> list[Event] | None:
    """The reply to "is your question about X?" that confirms it or brings what X needs
    (an email address, an invoice number, a pasted error): X is the topic now."""
    options = t.state.pending_options
    if len(options) != 1 or options[0] not in TOPICS or t.named not in (None, options[0]):
        return None
    if is_follow_up(t.text) or (t.named == options[0]):
        return t.answer("clarified", options[0])
    return None


def _switches_topic(t: Turn, topic: str) -> bool:
    """The message is a new request on another topic, not a follow-up on ``topic``."""
    top = t.top
    if top is None or top.label not in TOPICS or top.label == topic:
        return False
    long_enough = len(t.text.split()) > SWITCH_WORDS
    if t.named == top.label and (long_enough or switches(t.text)):
        return True  # the text names another topic
    return top.score >= t.threshold and category_of(top.label) != category_of(topic) and long_enough


def _out_of_scope(t: Turn) -> list[Event] | None:
    top = t.top
    unsure = top is None or (t.named is None and top.score < t.threshold)
    if is_closing(t.text) and (unsure or (top is not None and top.label in SPECIAL)):
        return t.acknowledge()
    off_topic = top is not None and top.label == OUT_OF_SCOPE and top.score >= OFF_TOPIC_MIN
    off_topic = off_topic or (t.named is None and cues.off_topic(t.text))
    if asks_about_bot(t.text) or (off_topic and len(t.text.split()) >= OFF_TOPIC_WORDS):
        return t.answer("out_of_scope", OUT_OF_SCOPE, replies.DECLINE)
    return None


def _by_intent(t: Turn) -> list[Event]:
    state, top, second = t.state, t.top, t.second
    several = cues.clause_requests(t.text, TOPICS)
    if len(several) >= 2:
        return [e for label, part in several for e in t.answer("multi_intent", label, part=part)]
    if top is None or top.label not in TOPICS:
        if state.unclear_turns + 1 > MAX_UNCLEAR_TURNS:
            return t.escalate("low_confidence")
        return t.clarify("no_intent", None, [])
    if _model_multi_intent(t, top, second):
        assert second is not None
        return [*t.answer("multi_intent", top.label), *t.answer("multi_intent", second.label)]
    named = t.named == top.label
    if not named and second is not None and _ambiguous(t, top, second):
        return t.clarify("ambiguous_intents", top.label, [top.label, second.label])
    if t.confidence >= t.threshold or (named and _named_clearly(t, top.label)):
        switched = state.topic is not None and category_of(state.topic) != category_of(top.label)
        switched = switched or (state.topic is not None and named and switches(t.text))
        return t.answer("context_switch" if switched else "confident_intent", top.label)
    if state.unclear_turns + 1 > MAX_UNCLEAR_TURNS:
        return t.escalate("low_confidence")
    return t.clarify("below_threshold", top.label, [top.label])


def _named_clearly(t: Turn, label: str) -> bool:
    """Below the threshold, but the text names ``label`` and the model agrees (has it in
    its top two), or the text names it as strongly as an override needs."""
    return t.model_ranks(label) or t.named_weight >= cues.OVERRIDE_WEIGHT


def _ambiguous(t: Turn, top: IntentScore, second: IntentScore) -> bool:
    """Top two within the margin. When the text's cues only confirm the model's own top
    intent, the model's margin counts (agreeing evidence must not make it ambiguous)."""
    model = t.msg.intents
    if model and model[0].label == top.label and len(model) > 1:
        return model[0].score - model[1].score < AMBIGUITY_MARGIN
    return top.score - second.score < AMBIGUITY_MARGIN


def _model_multi_intent(t: Turn, top: IntentScore, second: IntentScore | None) -> bool:
    return (
        second is not None
        and second.label in TOPICS
        and top.score >= MULTI_INTENT_MIN
        and second.score >= MULTI_INTENT_MIN
        and category_of(top.label) != category_of(second.label)
        and joins_requests(t.text)
    )
