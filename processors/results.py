"""What the policy does when an action's result arrives. Pure."""

from __future__ import annotations

from events.actions import ActionCompleted
from events.base import Event
from events.decisions import ClarificationRequested
from processors import actions, replies
from processors.emit import caused, escalate_result, result_decision, result_reply
from processors.state import ConversationState

#: Consecutive answers the knowledge base could not ground before one escalates.
UNGROUNDED_ESCALATE = 1


def decide_result(state: ConversationState, done: ActionCompleted) -> list[Event]:
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
                return escalate_result(state, done, "low_confidence")
            return [result_reply(done, state, replies.answer_for(topic, state.tone), "answer")]
        if done.outcome == "error":
            return [result_reply(done, state, replies.answer_for(topic, state.tone), "answer")]
        return []
    verdict = actions.result_reply(done, state.identity_failures, state.tone)
    if verdict.action == "escalate":
        return [] if state.status == "escalated" else escalate_result(state, done, verdict.reason)
    if verdict.action == "clarify":
        decision = result_decision(state, done, "clarify", verdict.reason)
        return [
            decision,
            ClarificationRequested(
                envelope=caused(done, ClarificationRequested),
                message_id=done.message_id,
                question=verdict.text,
                options=(),
            ),
            result_reply(done, state, verdict.text, "clarification"),
        ]
    text = verdict.text or replies.answer_for(topic, state.tone)
    return [result_reply(done, state, text, "answer")]
