"""The conversation policy: ``decide(state, event) -> events`` and ``evolve(state, event)``.

Pure functions over immutable values. Everything the policy knows about a message
arrives in ``MessageEnriched`` (model scores, flags, text, model version), so replaying
the same events yields byte-identical decisions. ``handle`` is what both drivers call:
it decides, then folds the input and the outputs into the new state.

The parts: :mod:`processors.state` (the state and ``evolve``), :mod:`processors.policy`
(the rules for a customer message), :mod:`processors.results` (an action's result),
:mod:`processors.emit` (the output events), :mod:`processors.cues` (the text's topic
evidence fused with the model's intents).
"""

from __future__ import annotations

from events.actions import ActionCompleted
from events.base import Event
from events.enrichment import MessageEnriched
from processors.emit import POLICY_VERSION, PRODUCER
from processors.policy import decide_message
from processors.results import decide_result
from processors.state import (
    TOPICS,
    ConversationState,
    case_id_for,
    evolve,
    fold,
    next_frustration,
)


def decide(state: ConversationState, event: Event) -> list[Event]:
    """The events the agent emits in response to ``event`` given ``state``."""
    if isinstance(event, ActionCompleted):
        if event.action_id in state.seen_messages:
            return []
        return decide_result(state, event)
    if not isinstance(event, MessageEnriched) or event.message_id in state.seen_messages:
        return []
    return decide_message(state, event)


def handle(state: ConversationState, event: Event) -> tuple[ConversationState, list[Event]]:
    """Decide on ``event`` and return the new state (input and outputs folded in).

    A message already in the state (delivered twice) yields nothing and changes
    nothing. The live driver writes a state only after the outputs it came with are
    acknowledged by Kafka, so a message in the state always has its outputs on the log.
    """
    outputs = decide(state, event)
    return fold(state, [event, *outputs]), outputs


__all__ = [
    "POLICY_VERSION",
    "PRODUCER",
    "TOPICS",
    "ConversationState",
    "case_id_for",
    "decide",
    "evolve",
    "fold",
    "handle",
    "next_frustration",
]
