"""The embedded CRM: one event-sourced ``Case`` aggregate per escalated conversation.

Built with the ``eventsourcing`` library on SQLite (``PERSISTENCE_MODULE=eventsourcing.sqlite``,
file ``settings.crm_sqlite_path``), so every case keeps its whole history (``Opened``,
``Updated``, ``StatusChanged``, ``Commented``) and can be audited like the log itself.

Idempotency is in the aggregate, hence atomic with the case's own events: a field or status
already at the value asked for records nothing, and a comment whose ``key`` the case has
already taken is skipped. Case ids are ``uuid5(external_id)``, so an upsert never creates a
second case for one conversation.

Note (FIELD-NOTES): the application must not define a method named ``close``; the store's
:meth:`LocalCaseStore.shutdown` calls the library's own.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any, cast

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event

from projections.crm.port import CaseFields, CrmCase, PermanentCrmError

CASE_NAMESPACE = uuid.UUID("0c6b3a7e-2f41-4d5e-9a1b-63726d636173")


def case_uuid(external_id: str) -> uuid.UUID:
    return uuid.uuid5(CASE_NAMESPACE, external_id)


class Case(Aggregate):
    """A CRM case; its events are its history."""

    @event("Opened")
    def __init__(self, external_id: str, fields: dict[str, Any]) -> None:
        self.external_id = external_id
        self.fields: dict[str, Any] = dict(fields)
        self.comments: list[str] = []
        self.comment_keys: list[str] = []

    @staticmethod
    def create_id(external_id: str, fields: dict[str, Any]) -> uuid.UUID:
        return case_uuid(external_id)

    def set_fields(self, fields: dict[str, Any]) -> None:
        """Record only what changes: ``Updated`` for fields, ``StatusChanged`` for status."""
        changed = {k: v for k, v in fields.items() if k != "status" and self.fields.get(k) != v}
        if changed:
            self._updated(changed)
        status = fields.get("status")
        if status is not None and status != self.fields.get("status"):
            self._status_changed(status)

    def comment(self, text: str, key: str | None) -> None:
        if key is None or key not in self.comment_keys:
            self._commented(text, key)

    @event("Updated")
    def _updated(self, fields: dict[str, Any]) -> None:
        self.fields.update(fields)

    @event("StatusChanged")
    def _status_changed(self, status: str) -> None:
        self.fields["status"] = status

    @event("Commented")
    def _commented(self, text: str, key: str | None) -> None:
        self.comments.append(text)
        if key is not None:
            self.comment_keys.append(key)


class CaseApplication(Application[uuid.UUID]):
    """The eventsourcing application holding the cases (no method named ``close``)."""

    def load(self, case_id: uuid.UUID) -> Case | None:
        try:
            return cast(Case, self.repository.get(case_id))
        except AggregateNotFoundError:
            return None


class LocalCaseStore:
    """:class:`~projections.crm.port.CaseStore` on eventsourcing + SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.app = self._open()

    def _open(self) -> CaseApplication:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(self.path)}
        return CaseApplication(env=env)

    def upsert_case(self, external_id: str, fields: CaseFields) -> str:
        case = self.app.load(case_uuid(external_id))
        if case is None:
            case = Case(external_id, dict(fields))
        else:
            case.set_fields(dict(fields))
        self.app.save(case)
        return str(case.id)

    def update_case(self, case_id: str, fields: CaseFields) -> None:
        case = self._require(case_id)
        case.set_fields(dict(fields))
        self.app.save(case)

    def add_comment(self, case_id: str, text: str, *, key: str | None = None) -> None:
        case = self._require(case_id)
        case.comment(text, key)
        self.app.save(case)

    def get_case(self, external_id: str) -> CrmCase | None:
        case = self.app.load(case_uuid(external_id))
        if case is None:
            return None
        return CrmCase(
            str(case.id), external_id, cast(CaseFields, dict(case.fields)), tuple(case.comments)
        )

    def history(self, external_id: str) -> list[str]:
        """The names of the case's events, oldest first (``Case.Opened``, ...)."""
        events = self.app.events.get(case_uuid(external_id))
        return [type(e).__qualname__ for e in events]

    def _require(self, case_id: str) -> Case:
        try:
            case = self.app.load(uuid.UUID(case_id))
        except ValueError:
            case = None
        if case is None:
            raise PermanentCrmError(f"no case {case_id}")
        return case

    def wipe(self) -> int:
        """Delete every case (all of this file's events); return how many events went."""
        self.app.close()
        with sqlite3.connect(self.path) as conn:
            tables = [
                r[0]
                for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                if not str(r[0]).startswith(("crm_", "sqlite_"))
            ]
            deleted = 0
            for table in tables:
                deleted += conn.execute(f'DELETE FROM "{table}"').rowcount
        self.app = self._open()
        return deleted

    def count(self) -> int:
        """How many cases the store holds."""
        with sqlite3.connect(self.path) as conn:
            row = conn.execute("SELECT COUNT(DISTINCT originator_id) FROM stored_events").fetchone()
        return int(row[0])

    def shutdown(self) -> None:
        self.app.close()
