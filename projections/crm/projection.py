"""The CRM case-sync projection: escalations become cases, later events update them.

Reads the inbound, decisions and cases topics (each event only from its home topic):

* ``CaseEscalated`` upserts the case (subject, description with summary and transcript
  ref, priority, AI confidence, intent, sentiment trajectory, status ``Escalated``);
* ``ConversationStarted`` sets its origin (channel); ``ConversationClosed`` sets status
  ``Closed``; ``FeedbackReceived`` adds a comment; a ``DecisionMade`` with reason
  ``awaiting_human`` (the customer wrote again after the hand-over) adds a comment with the
  message id, intent and sentiment (not the text: that would need a join with the inbound
  messages, which this projection does not keep).

The ledger knows which conversations have a case (so a follow-up for one without a case
costs no CRM call); what arrives before the case exists waits in its pending table and is
applied when the case is created, so any interleaving of the topics (live or rebuild)
gives the same case.

Guarantees (honest version). Positions and applied event ids live in a SQLite ledger
(:mod:`projections.crm.ledger`), committed after each event that touched the CRM.

* Embedded store: the ledger shares the store's SQLite file but not its transactions
  (eventsourcing writes through its own connection). A crash between the case write and
  the ledger commit redelivers the event; the case aggregate makes that harmless (same
  fields/status record nothing, a comment keyed by the event id is taken once), so the
  effect is exactly once.
* Salesforce: the calls are not transactional with the ledger: delivery is at least once.
  Upsert by external id and status updates are idempotent; a comment can be duplicated
  only if the process dies between the Salesforce call and the ledger commit.
* A :class:`~projections.crm.port.PermanentCrmError` becomes an ``EventRejected`` (stage
  ``crm``) on the dead-letter topic, flushed before the position moves; its id derives
  from the record's position, so a repeat is recognisable. Any other error propagates and
  the runner retries the batch (already-applied events are then skipped by position).
  A pending step refused for good when its case is created is logged and dropped (its
  record is no longer at hand to dead-letter).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from events.base import Event
from events.conversation import ConversationClosed, ConversationStarted, FeedbackReceived
from events.decisions import CaseEscalated, DecisionMade
from projections.contract import Applied, Position
from projections.crm.ledger import Ledger
from projections.crm.port import CaseFields, CaseStore, PermanentCrmError
from streams.settings import Settings
from streams.steps import Record
from streams.topics import ROUTES, Topics

log = logging.getLogger("casestream.projections.crm")

NAME = "crm"
DEFAULT_SQLITE_PATH = Path(".data/crm.sqlite")
PRIORITY = {"urgent": "High", "high": "High", "medium": "Medium", "low": "Low"}
DeadLetter = Callable[[Record, Exception], None]


def external_id(tenant_id: str, conversation_id: str) -> str:
    """The CRM's external id of a conversation (``:`` and ``%`` escaped in each part)."""

    def esc(part: str) -> str:
        return part.replace("%", "%25").replace(":", "%3A")

    return f"{esc(tenant_id)}:{esc(conversation_id)}"


def case_fields(event: CaseEscalated) -> CaseFields:
    """The fields of the case an escalation opens (pure)."""
    tried = f"\nTried: {', '.join(event.tried)}" if event.tried else ""
    fields = CaseFields(
        subject=f"[{event.priority}] {event.reason.replace('_', ' ')}"[:255],
        description=f"{event.summary}\n\nTranscript: {event.transcript_ref}{tried}",
        priority=PRIORITY.get(event.priority, "Medium"),
        status="Escalated",
        ai_confidence=round(event.confidence, 4),
        sentiment_trajectory=",".join(f"{v:.2f}" for v in event.sentiment_trajectory),
        escalation_reason=event.reason,
        case_ref=event.case_id,
    )
    if event.intent is not None:
        fields["intent"] = event.intent
    return fields


def follow_up(event: Event) -> tuple[str, Any] | None:
    """What a non-escalation event does to an existing case: ``("update", fields)``,
    ``("comment", text)`` or None (pure)."""
    if isinstance(event, ConversationStarted):
        return "update", {"origin": event.channel}
    if isinstance(event, ConversationClosed):
        return "update", {"status": "Closed", "close_reason": event.reason}
    if isinstance(event, FeedbackReceived):
        text = f"Customer feedback: {event.rating}/5"
        return "comment", text + (f": {event.comment}" if event.comment else "")
    if isinstance(event, DecisionMade) and event.reason == "awaiting_human":
        return "comment", (
            f"Customer wrote again after the hand-over (message {event.message_id}; "
            f"intent {event.intent or 'unknown'}, sentiment {event.sentiment_label}, "
            f"frustration {event.frustration:.2f})"
        )
    return None


class CrmProjection:
    """Case sync into a :class:`~projections.crm.port.CaseStore` (see module docstring)."""

    name = NAME

    def __init__(
        self,
        store: CaseStore,
        settings: Settings,
        *,
        ledger: Ledger | None = None,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._topics = Topics(settings.topic_prefix)
        path = Path(getattr(settings, "crm_sqlite_path", DEFAULT_SQLITE_PATH))
        self.ledger = ledger or Ledger(path, settings.topic_prefix)
        self.dead_letter = dead_letter or _KafkaDeadLetters(settings)
        self.counts = dict.fromkeys(("applied", "duplicate", "stale", "ignored", "rejected"), 0)

    @classmethod
    def from_settings(cls, settings: Settings) -> CrmProjection:
        """Salesforce when ``crm_url`` is set, else the embedded store."""
        path = Path(getattr(settings, "crm_sqlite_path", DEFAULT_SQLITE_PATH))
        url: str | None = getattr(settings, "crm_url", None)
        store: CaseStore
        if url:
            from projections.crm.salesforce import SalesforceCaseStore

            store = SalesforceCaseStore.login(
                url,
                username=str(getattr(settings, "crm_username", "") or ""),
                password=str(getattr(settings, "crm_password", "") or ""),
                token=str(getattr(settings, "crm_token", "") or ""),
            )
        else:
            from projections.crm.local import LocalCaseStore

            store = LocalCaseStore(path)
        return cls(store, settings)

    def topics(self) -> list[str]:
        t = self._topics
        return [t.inbound, t.decisions, t.cases]

    def positions(self) -> Position:
        return self.ledger.positions()

    def apply(self, batch: Sequence[Applied]) -> None:
        stored = self.ledger.positions()
        moved: dict[tuple[str, int], int] = {}
        for item in batch:
            record, event = item.record, item.event
            tp = (record.topic, record.partition)
            if record.offset < max(stored.get(tp, 0), moved.get(tp, 0)):
                self.counts["stale"] += 1
                continue
            moved[tp] = record.offset + 1
            home = ROUTES.get(type(event))
            relevant = isinstance(event, CaseEscalated) or follow_up(event) is not None
            if not relevant or home is None or self._topics.name(home) != record.topic:
                self.counts["ignored"] += 1
                continue
            if self.ledger.applied(event.event_id):
                self.counts["duplicate"] += 1
                continue
            try:
                self._apply_one(event)
                self.counts["applied"] += 1
            except PermanentCrmError as exc:
                self.dead_letter(record, exc)
                self.counts["rejected"] += 1
            self.ledger.commit(moved, [event.event_id])
            moved = {}
        if moved:
            self.ledger.commit(moved, [])

    def _apply_one(self, event: Event) -> None:
        env = event.envelope
        ext = external_id(env.tenant_id, env.conversation_id)
        if isinstance(event, CaseEscalated):
            case_id = self.store.upsert_case(ext, case_fields(event))
            self.ledger.set_case(ext, case_id)
            for event_id, kind, payload in self.ledger.pending(ext):
                try:
                    self._follow(case_id, event_id, kind, payload)
                except PermanentCrmError as exc:  # its record is gone from hand: log only
                    log.warning("crm: pending %s %s for %s refused: %s", kind, event_id, ext, exc)
            self.ledger.drop_pending(ext)
            return
        step = follow_up(event)
        assert step is not None
        known = self.ledger.case_id(ext)
        if known is None:
            self.ledger.add_pending(ext, event.event_id, *step)
        else:
            self._follow(known, event.event_id, *step)

    def _follow(self, case_id: str, event_id: str, kind: str, payload: Any) -> None:
        if kind == "update":
            self.store.update_case(case_id, payload)
        else:
            self.store.add_comment(case_id, str(payload), key=event_id)

    def wipe(self) -> int:
        """Forget this prefix's positions and pending facts and, for the embedded store,
        every case. Salesforce cases stay (and so do the applied ids, so a rebuild does
        not repeat comments there)."""
        wipe_store: Callable[[], int] | None = getattr(self.store, "wipe", None)
        if wipe_store is None:
            return self.ledger.wipe(keep_applied=True)
        return self.ledger.wipe() + wipe_store()

    def summary(self) -> dict[str, int]:
        count: Callable[[], int] | None = getattr(self.store, "count", None)
        out = dict(self.counts)
        if count is not None:
            out["cases"] = count()
        return out

    def close(self) -> None:
        self.ledger.close()
        shutdown: Callable[[], None] | None = getattr(self.store, "shutdown", None)
        if shutdown is not None:
            shutdown()
        closer: Callable[[], None] | None = getattr(self.dead_letter, "close", None)
        if closer is not None:
            closer()


class _KafkaDeadLetters:
    """``EventRejected`` (stage ``crm``) to the dead-letter topic, built as the worker's
    ``Steps.rejected`` builds it; flushed before returning."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._publisher: Any = None
        self._steps: Any = None

    def __call__(self, record: Record, exc: Exception) -> None:
        if self._publisher is None:
            from streams.bootstrap import build_steps
            from streams.kafka import EventPublisher

            self._steps = build_steps(self.settings)
            self._publisher = EventPublisher(self.settings, self._steps.codec)
        self._publisher.send(self._steps.rejected(record, "crm", exc))
        self._publisher.flush()

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.flush()
