"""Events of the knowledge base: what ingest decided about each article version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from events.base import Event

#: ``status`` of an article version that is served.
STATUS_CURRENT = "current"
#: ``status`` of an older version of an id that has a newer valid version (kept, not served).
STATUS_SUPERSEDED = "superseded"
#: Prefix of the ``status`` of a near-copy of another article: ``duplicate_of:<id>``.
STATUS_DUPLICATE_PREFIX = "duplicate_of:"


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeIngested(Event):
    """One article version was read, chunked and indexed (or kept unserved).

    The envelope's ``tenant_id`` is the knowledge base's tenant (the index namespace) and
    its ``conversation_id`` is ``kb:<article_id>``. The event id derives from the tenant,
    article, version, content hash and status, so re-ingesting an unchanged directory
    records events with the same ids.
    """

    article_id: str
    version: int
    title: str
    product_area: str
    updated: date
    content_sha256: str
    status: str
    passage_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def served(self) -> bool:
        return self.status == STATUS_CURRENT
