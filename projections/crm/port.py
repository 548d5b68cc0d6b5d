"""The CRM port: what the case-sync projection needs from a CRM, and nothing more.

Fields are CRM-neutral (:class:`CaseFields`); each adapter maps them to its own names
(Salesforce: ``Subject``, ``Priority``, ``CaseStream_Intent__c``, ...). Errors follow one
rule: a :class:`PermanentCrmError` means "this request will never succeed" (a bad field,
a missing record) and the projection dead-letters the event; any other exception means
"not now" (CRM down, limits) and the runner retries the same batch later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypedDict


class CaseFields(TypedDict, total=False):
    """CRM-neutral case fields; an adapter writes only the keys present."""

    subject: str
    description: str
    priority: str  # High | Medium | Low
    origin: str  # the conversation's channel
    status: str  # New | Escalated | Closed
    ai_confidence: float
    intent: str
    sentiment_trajectory: str  # comma-separated valences, oldest first
    escalation_reason: str
    close_reason: str
    case_ref: str  # casestream's own case id (CaseEscalated.case_id)


@dataclass(frozen=True)
class CrmCase:
    """A case as the CRM holds it."""

    case_id: str
    external_id: str
    fields: CaseFields
    comments: tuple[str, ...] = field(default=())


class PermanentCrmError(Exception):
    """The CRM refused the request for good (e.g. 400 with a bad field): retrying cannot
    help. The projection turns it into a dead letter and goes on."""


class CaseStore(Protocol):
    """A CRM holding one case per escalated conversation, found by ``external_id``.

    Every method is idempotent for the same arguments except :meth:`add_comment` without
    a ``key``: an adapter that can dedupe by ``key`` does so (the embedded one does,
    atomically with the case), one that cannot documents it.
    """

    def upsert_case(self, external_id: str, fields: CaseFields) -> str:
        """Create the case for ``external_id`` or update its fields; return its case id."""
        ...

    def update_case(self, case_id: str, fields: CaseFields) -> None:
        """Set ``fields`` on an existing case (e.g. ``status="Closed"``)."""
        ...

    def add_comment(self, case_id: str, text: str, *, key: str | None = None) -> None:
        """Append a comment; ``key`` (the causing event's id) lets the store skip repeats."""
        ...

    def get_case(self, external_id: str) -> CrmCase | None:
        """The case for ``external_id`` with its comments, or None."""
        ...
