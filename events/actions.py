"""Resolution actions: what the decider asked the act stage to do, and what came of it.

The pure decider emits :class:`ActionRequested`; the act stage (an I/O shell) performs it
once and records :class:`ActionCompleted` on the decider's input stream, so replay reads
the recorded result and never performs a side effect (email, refund, LLM call) twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from events.base import Event

#: ``kind`` values: the four workflows and a knowledge-base answer.
ACTION_KINDS = ("password_reset", "api_diagnosis", "invoice_lookup", "refund", "answer")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRequested(Event):
    """The decider asks for an action; ``action_id`` is this event's id.

    ``action_id`` is the act stage's idempotency key: a redelivered or replayed request
    is never performed twice (see :mod:`streams.act`). ``channel`` (v2) is where an
    answer's reply goes; v1 records, written before it existed, read as web chat.
    """

    SCHEMA_VERSION: ClassVar[int] = 2  # v2: channel

    action_id: str
    message_id: str
    kind: str
    params: Mapping[str, str]
    intent: str
    technical_level: str = "basic"
    channel: str = "web_chat"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionCompleted(Event):
    """The act stage's record of an action's result (caused by the ActionRequested).

    ``outcome`` is what the decider acts on (``password_reset_sent``,
    ``token_expiry_identified``, ``answered``, ``escalate``, ``error``, ...);
    ``citations`` and ``link`` are set for ``kind="answer"``.
    """

    action_id: str
    message_id: str
    kind: str
    status: str
    outcome: str
    details: Mapping[str, str]
    reason: str
    citations: tuple[str, ...] = ()
    link: str = ""
