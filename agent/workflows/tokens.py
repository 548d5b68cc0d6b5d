"""Single-use password-reset tokens: the :class:`TokenStore` port and two adapters.

Only the SHA-256 hash of a token is stored; the token itself exists in the reset email
and nowhere else (not in events either). The rules, from the KB article "Reset your
password": a link is valid for 30 minutes, works once, and only the newest link of a user
works. Validity is decided by the pure :func:`check_token`; the store's
:meth:`TokenStore.consume` marks a token used atomically, so two concurrent redeems of the
same link cannot both succeed.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from agent.workflows.base import Clock, as_utc, jsonable, utc_now

RESET_TOKEN_LIFETIME = timedelta(minutes=30)
RedeemStatus = Literal["redeemed", "expired", "used", "superseded", "unknown"]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the store keeps about one issued token (never the token itself)."""

    token_hash: str
    tenant_id: str
    user_id: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    superseded: bool = False


@dataclass(frozen=True, slots=True)
class RedeemResult:
    status: RedeemStatus
    tenant_id: str | None = None
    user_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "redeemed"

    def to_dict(self) -> dict[str, Any]:
        return dict(jsonable(self))


def check_token(record: TokenRecord | None, now: datetime) -> RedeemStatus:
    """Whether ``record`` may be redeemed at ``now`` (pure)."""
    if record is None:
        return "unknown"
    if record.used_at is not None:
        return "used"
    if record.superseded:
        return "superseded"
    if as_utc(now) >= as_utc(record.expires_at):
        return "expired"
    return "redeemed"


class TokenStore(Protocol):
    """Issued reset tokens by hash. Adapters: :class:`InMemoryTokenStore`,
    :class:`SQLiteTokenStore`. Failures raise
    :class:`~agent.workflows.base.WorkflowError`."""

    def add(self, record: TokenRecord) -> None:
        """Store ``record`` and mark every earlier unused token of the same user superseded."""
        ...

    def get(self, token_hash: str) -> TokenRecord | None: ...

    def consume(self, token_hash: str, used_at: datetime) -> bool:
        """Set ``used_at`` if the token is still unused and not superseded; True if it was set.

        This is the compare-and-set that makes a link single use.
        """
        ...

    def issued_since(self, tenant_id: str, user_id: str, since: datetime) -> int:
        """How many tokens were issued to the user at or after ``since``."""
        ...


class InMemoryTokenStore:
    def __init__(self) -> None:
        self._records: dict[str, TokenRecord] = {}
        self._lock = threading.Lock()

    def add(self, record: TokenRecord) -> None:
        with self._lock:
            for key, old in self._records.items():
                same_user = (old.tenant_id, old.user_id) == (record.tenant_id, record.user_id)
                if same_user and old.used_at is None:
                    self._records[key] = replace(old, superseded=True)
            self._records[record.token_hash] = record

    def get(self, token_hash: str) -> TokenRecord | None:
        return self._records.get(token_hash)

    def consume(self, token_hash: str, used_at: datetime) -> bool:
        with self._lock:
            record = self._records.get(token_hash)
            if record is None or record.used_at is not None or record.superseded:
                return False
            self._records[token_hash] = replace(record, used_at=used_at)
            return True

    def issued_since(self, tenant_id: str, user_id: str, since: datetime) -> int:
        return sum(
            1
            for r in self._records.values()
            if (r.tenant_id, r.user_id) == (tenant_id, user_id)
            and as_utc(r.issued_at) >= as_utc(since)
        )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS reset_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    superseded INTEGER NOT NULL DEFAULT 0
)
"""


def _ts(value: datetime) -> str:
    return as_utc(value).isoformat()


class SQLiteTokenStore:
    """Tokens in a SQLite file (or ``:memory:``); safe to share between threads."""

    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, record: TokenRecord) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "UPDATE reset_tokens SET superseded = 1"
                    " WHERE tenant_id = ? AND user_id = ? AND used_at IS NULL",
                    (record.tenant_id, record.user_id),
                )
                self._db.execute(
                    "INSERT INTO reset_tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.token_hash,
                        record.tenant_id,
                        record.user_id,
                        _ts(record.issued_at),
                        _ts(record.expires_at),
                        None if record.used_at is None else _ts(record.used_at),
                        int(record.superseded),
                    ),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def get(self, token_hash: str) -> TokenRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT token_hash, tenant_id, user_id, issued_at, expires_at, used_at,"
                " superseded FROM reset_tokens WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
        if row is None:
            return None
        return TokenRecord(
            token_hash=row[0],
            tenant_id=row[1],
            user_id=row[2],
            issued_at=datetime.fromisoformat(row[3]),
            expires_at=datetime.fromisoformat(row[4]),
            used_at=None if row[5] is None else datetime.fromisoformat(row[5]),
            superseded=bool(row[6]),
        )

    def consume(self, token_hash: str, used_at: datetime) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE reset_tokens SET used_at = ?"
                " WHERE token_hash = ? AND used_at IS NULL AND superseded = 0",
                (_ts(used_at), token_hash),
            )
        return cursor.rowcount == 1

    def issued_since(self, tenant_id: str, user_id: str, since: datetime) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM reset_tokens"
                " WHERE tenant_id = ? AND user_id = ? AND issued_at >= ?",
                (tenant_id, user_id, _ts(since)),
            ).fetchone()
        return int(row[0])


class ResetTokens:
    """Issues and redeems reset tokens against a :class:`TokenStore`."""

    def __init__(
        self,
        store: TokenStore,
        *,
        clock: Clock = utc_now,
        lifetime: timedelta = RESET_TOKEN_LIFETIME,
    ) -> None:
        self.store = store
        self.clock = clock
        self.lifetime = lifetime

    def issue(self, tenant_id: str, user_id: str) -> tuple[str, TokenRecord]:
        """A new token (returned once, to be mailed) and its stored record."""
        token, now = new_token(), as_utc(self.clock())
        record = TokenRecord(
            token_hash=hash_token(token),
            tenant_id=tenant_id,
            user_id=user_id,
            issued_at=now,
            expires_at=now + self.lifetime,
        )
        self.store.add(record)
        return token, record

    def redeem(self, token: str) -> RedeemResult:
        """Succeeds once per token, within its lifetime, if no newer token was issued."""
        token_hash, now = hash_token(token), as_utc(self.clock())
        record = self.store.get(token_hash)
        status = check_token(record, now)
        if status == "redeemed" and not self.store.consume(token_hash, now):
            status = "used"
        if record is None:
            return RedeemResult(status)
        return RedeemResult(status, record.tenant_id, record.user_id)
