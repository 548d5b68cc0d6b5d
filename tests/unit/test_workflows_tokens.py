"""Reset tokens: one contract, run against the in-memory and the SQLite store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.workflows.tokens import (
    InMemoryTokenStore,
    ResetTokens,
    SQLiteTokenStore,
    TokenStore,
    hash_token,
)

T0 = datetime(2026, 9, 12, 12, 0, tzinfo=UTC)


@dataclass
class StepClock:
    """A clock the test moves by hand."""

    now: datetime = field(default=T0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class TokenStoreContract:
    """Subclass and provide ``make_store``."""

    def make_store(self, tmp_path: Path) -> TokenStore:
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> StepClock:
        return StepClock()

    @pytest.fixture
    def tokens(self, tmp_path: Path, clock: StepClock) -> ResetTokens:
        return ResetTokens(self.make_store(tmp_path), clock=clock)

    def test_redeems_once(self, tokens: ResetTokens) -> None:
        token, _ = tokens.issue("acme", "u-acme-dana")
        first = tokens.redeem(token)
        assert first.ok and (first.tenant_id, first.user_id) == ("acme", "u-acme-dana")
        assert tokens.redeem(token).status == "used"

    def test_only_the_hash_is_stored(self, tokens: ResetTokens) -> None:
        token, record = tokens.issue("acme", "u-acme-dana")
        assert record.token_hash == hash_token(token) != token
        assert tokens.store.get(token) is None
        assert tokens.store.get(record.token_hash) == record

    def test_valid_for_thirty_minutes(self, tokens: ResetTokens, clock: StepClock) -> None:
        early, record = tokens.issue("acme", "u-acme-dana")
        assert record.expires_at - record.issued_at == timedelta(minutes=30)
        clock.advance(minutes=29, seconds=59)
        assert tokens.redeem(early).ok
        late, _ = tokens.issue("acme", "u-acme-li")
        clock.advance(minutes=30)
        assert tokens.redeem(late).status == "expired"

    def test_only_the_newest_link_of_a_user_works(self, tokens: ResetTokens) -> None:
        old, _ = tokens.issue("acme", "u-acme-dana")
        other_user, _ = tokens.issue("acme", "u-acme-li")
        new, _ = tokens.issue("acme", "u-acme-dana")
        assert tokens.redeem(old).status == "superseded"
        assert tokens.redeem(other_user).ok
        assert tokens.redeem(new).ok

    def test_unknown_token(self, tokens: ResetTokens) -> None:
        assert tokens.redeem("made-up").status == "unknown"

    def test_tokens_are_random(self, tokens: ResetTokens) -> None:
        issued = {tokens.issue("acme", f"u{i}")[0] for i in range(20)}
        assert len(issued) == 20 and all(len(t) >= 40 for t in issued)

    def test_counts_issued_per_user_since(self, tokens: ResetTokens, clock: StepClock) -> None:
        tokens.issue("acme", "u-acme-dana")
        clock.advance(minutes=50)
        tokens.issue("acme", "u-acme-dana")
        tokens.issue("globex", "u-acme-dana")
        since = clock.now - timedelta(hours=1)
        assert tokens.store.issued_since("acme", "u-acme-dana", since) == 2
        assert tokens.store.issued_since("acme", "u-acme-dana", clock.now) == 1

    def test_consume_is_compare_and_set(self, tokens: ResetTokens) -> None:
        _, record = tokens.issue("acme", "u-acme-dana")
        assert tokens.store.consume(record.token_hash, T0)
        assert not tokens.store.consume(record.token_hash, T0)


class TestInMemoryTokenStore(TokenStoreContract):
    def make_store(self, tmp_path: Path) -> TokenStore:
        return InMemoryTokenStore()


class TestSQLiteTokenStore(TokenStoreContract):
    def make_store(self, tmp_path: Path) -> TokenStore:
        return SQLiteTokenStore(str(tmp_path / "tokens.db"))

    def test_survives_reopening(self, tmp_path: Path) -> None:
        path = str(tmp_path / "tokens.db")
        token, _ = ResetTokens(SQLiteTokenStore(path), clock=StepClock()).issue("acme", "u1")
        reopened = ResetTokens(SQLiteTokenStore(path), clock=StepClock())
        assert reopened.redeem(token).ok
        assert reopened.redeem(token).status == "used"
