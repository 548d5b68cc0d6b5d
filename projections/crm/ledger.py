"""The projection's own bookkeeping in SQLite: positions, applied event ids, pending facts.

Tables (all ``crm_``-prefixed, so they can share the embedded store's database file):

* ``crm_positions(topic, partition, next_offset)``: where to resume (full topic names, so
  topic prefixes never collide);
* ``crm_applied(prefix, event_id)``: events already applied (a redelivery at a new offset,
  e.g. a producer retry, is skipped);
* ``crm_pending(prefix, external_id, event_id, kind, payload)``: what arrived for a
  conversation before its case existed (the runner interleaves topics, so in a rebuild a
  ``ConversationClosed`` can be read before its ``CaseEscalated``); applied, then deleted,
  when the case is created. Conversations that never escalate keep their rows (2 small
  rows each);
* ``crm_cases(prefix, external_id, case_id)``: the cases this projection made, so a
  follow-up event for a conversation without a case costs no CRM call.

:meth:`commit` writes positions and applied ids in one SQLite transaction.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crm_positions (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
  PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS crm_applied (
  prefix TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (prefix, event_id));
CREATE TABLE IF NOT EXISTS crm_pending (
  prefix TEXT NOT NULL, external_id TEXT NOT NULL, event_id TEXT NOT NULL,
  kind TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (prefix, external_id, event_id));
CREATE TABLE IF NOT EXISTS crm_cases (
  prefix TEXT NOT NULL, external_id TEXT NOT NULL, case_id TEXT NOT NULL,
  PRIMARY KEY (prefix, external_id));
"""


class Ledger:
    """Positions, applied ids and pending facts of one topic prefix."""

    def __init__(self, path: Path, prefix: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.conn.executescript(_SCHEMA)

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self.conn.execute(
            "SELECT topic, partition, next_offset FROM crm_positions "
            "WHERE topic LIKE ? ESCAPE '\\'",
            (self._like(),),
        )
        return {(str(t), int(p)): int(o) for t, p, o in rows}

    def applied(self, event_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM crm_applied WHERE prefix = ? AND event_id = ?", (self.prefix, event_id)
        ).fetchone()
        return row is not None

    def commit(self, positions: dict[tuple[str, int], int], applied: list[str]) -> None:
        """Store ``positions`` and mark ``applied`` event ids, in one transaction."""
        with self._tx():
            self.conn.executemany(
                "INSERT INTO crm_positions VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
                "DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
                [(t, p, o) for (t, p), o in positions.items()],
            )
            self.conn.executemany(
                "INSERT OR IGNORE INTO crm_applied VALUES (?, ?)",
                [(self.prefix, e) for e in applied],
            )

    def case_id(self, external_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT case_id FROM crm_cases WHERE prefix = ? AND external_id = ?",
            (self.prefix, external_id),
        ).fetchone()
        return None if row is None else str(row[0])

    def set_case(self, external_id: str, case_id: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO crm_cases VALUES (?, ?, ?)",
            (self.prefix, external_id, case_id),
        )

    def add_pending(self, external_id: str, event_id: str, kind: str, payload: Any) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO crm_pending VALUES (?, ?, ?, ?, ?)",
            (self.prefix, external_id, event_id, kind, json.dumps(payload, sort_keys=True)),
        )

    def pending(self, external_id: str) -> list[tuple[str, str, Any]]:
        """``(event_id, kind, payload)`` waiting for ``external_id``'s case, in arrival order."""
        rows = self.conn.execute(
            "SELECT event_id, kind, payload FROM crm_pending WHERE prefix = ? "
            "AND external_id = ? ORDER BY rowid",
            (self.prefix, external_id),
        )
        return [(str(e), str(k), json.loads(p)) for e, k, p in rows]

    def drop_pending(self, external_id: str) -> None:
        self.conn.execute(
            "DELETE FROM crm_pending WHERE prefix = ? AND external_id = ?",
            (self.prefix, external_id),
        )

    def wipe(self, *, keep_applied: bool = False) -> int:
        """Delete this prefix's rows (``keep_applied``: not the applied ids and case ids,
        which mirror a CRM that is not wiped); return how many."""
        with self._tx():
            n = self.conn.execute(
                "DELETE FROM crm_positions WHERE topic LIKE ? ESCAPE '\\'", (self._like(),)
            ).rowcount
            n += self.conn.execute(
                "DELETE FROM crm_pending WHERE prefix = ?", (self.prefix,)
            ).rowcount
            if not keep_applied:
                for table in ("crm_applied", "crm_cases"):
                    n += self.conn.execute(
                        f"DELETE FROM {table} WHERE prefix = ?", (self.prefix,)
                    ).rowcount
        return n

    def close(self) -> None:
        self.conn.close()

    def _like(self) -> str:
        escaped = self.prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return escaped + ".%"

    def _tx(self) -> _Transaction:
        return _Transaction(self.conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
