"""The topic registry: every topic, its partitions, key, retention, and who writes what."""

from __future__ import annotations

from dataclasses import dataclass

from events.actions import ActionCompleted, ActionRequested
from events.base import Event
from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    FeedbackReceived,
    MessageReceived,
)
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.delivery import EventRejected, ReplyDelivered
from events.enrichment import MessageEnriched
from events.knowledge import KnowledgeIngested

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: ``name`` is the suffix after the prefix."""

    name: str
    doc: str
    key: str = "tenant_id/conversation_id"
    retention_ms: int = -1  # the log is the truth: keep forever by default
    compacted: bool = False
    partitions: int | None = None  # None = the settings' conversation partition count

    def full_name(self, prefix: str) -> str:
        return f"{prefix}.{self.name}"

    def config(self) -> dict[str, str]:
        cfg = {"retention.ms": str(self.retention_ms)}
        cfg["cleanup.policy"] = "compact" if self.compacted else "delete"
        return cfg


INBOUND = TopicSpec("conversations.inbound", "Customer events from connectors.")
ENRICHED = TopicSpec("conversations.enriched", "MessageEnriched + lifecycle events, in order.")
DECISIONS = TopicSpec("conversations.decisions", "DecisionMade and ClarificationRequested.")
OUTBOUND = TopicSpec("conversations.outbound", "ReplyRequested, for connectors to deliver.")
DELIVERIES = TopicSpec("conversations.deliveries", "ReplyDelivered, written by connectors.")
ACTIONS = TopicSpec(
    "conversations.actions", "ActionRequested, for the act stage (workflows, KB answers)."
)
CASES = TopicSpec("conversations.cases", "CaseEscalated, for the CRM projection.")
KNOWLEDGE = TopicSpec(
    "knowledge", "KnowledgeIngested, one per article version.", key="tenant_id/kb:article_id"
)
DEADLETTER = TopicSpec(
    "deadletter", "EventRejected: undecodable or failed records.", retention_ms=30 * DAY_MS
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    INBOUND,
    ENRICHED,
    DECISIONS,
    OUTBOUND,
    DELIVERIES,
    CASES,
    ACTIONS,
    KNOWLEDGE,
    DEADLETTER,
)

#: Which topic each event type is written to.
ROUTES: dict[type[Event], TopicSpec] = {
    ConversationStarted: INBOUND,
    MessageReceived: INBOUND,
    ConversationClosed: INBOUND,
    FeedbackReceived: INBOUND,
    MessageEnriched: ENRICHED,
    DecisionMade: DECISIONS,
    ClarificationRequested: DECISIONS,
    ReplyRequested: OUTBOUND,
    ReplyDelivered: DELIVERIES,
    CaseEscalated: CASES,
    EventRejected: DEADLETTER,
    KnowledgeIngested: KNOWLEDGE,
    ActionRequested: ACTIONS,
    # on the decider's input stream, so the result is ordered with the conversation
    ActionCompleted: ENRICHED,
}

#: Lifecycle events the enrich stage forwards unchanged to the enriched topic so the
#: decider sees one ordered stream per conversation.
PASS_THROUGH: tuple[type[Event], ...] = (ConversationStarted, ConversationClosed, FeedbackReceived)


class Topics:
    """Full topic names for one prefix."""

    def __init__(self, prefix: str = "casestream") -> None:
        self.prefix = prefix

    def name(self, spec: TopicSpec) -> str:
        return spec.full_name(self.prefix)

    def for_event(self, event: Event) -> str:
        return self.name(ROUTES[type(event)])

    @property
    def inbound(self) -> str:
        return self.name(INBOUND)

    @property
    def enriched(self) -> str:
        return self.name(ENRICHED)

    @property
    def decisions(self) -> str:
        return self.name(DECISIONS)

    @property
    def outbound(self) -> str:
        return self.name(OUTBOUND)

    @property
    def deliveries(self) -> str:
        return self.name(DELIVERIES)

    @property
    def cases(self) -> str:
        return self.name(CASES)

    @property
    def actions(self) -> str:
        return self.name(ACTIONS)

    @property
    def deadletter(self) -> str:
        return self.name(DEADLETTER)

    def all(self) -> list[str]:
        return [self.name(t) for t in ALL_TOPICS]
