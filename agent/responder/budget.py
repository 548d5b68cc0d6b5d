"""Per-tenant daily token budget of one LLM link (in-process; resets at UTC midnight)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


class TokenBudget:
    """``tokens_per_tenant_day`` tokens per tenant per UTC day; 0 = unlimited."""

    def __init__(self, tokens_per_tenant_day: int, clock: Callable[[], float] = time.time) -> None:
        self.limit = tokens_per_tenant_day
        self._clock = clock
        self._spent: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def remaining(self, tenant_id: str) -> int | None:
        """Tokens left today, None when unlimited."""
        if self.limit <= 0:
            return None
        with self._lock:
            return max(0, self.limit - self._spent.get(self._key(tenant_id), 0))

    def allows(self, tenant_id: str, tokens: int) -> bool:
        left = self.remaining(tenant_id)
        return left is None or left >= tokens

    def spend(self, tenant_id: str, tokens: int) -> None:
        with self._lock:
            key = self._key(tenant_id)
            self._spent = {k: v for k, v in self._spent.items() if k[1] == key[1]}
            self._spent[key] = self._spent.get(key, 0) + tokens

    def _key(self, tenant_id: str) -> tuple[str, str]:
        day = datetime.fromtimestamp(self._clock(), UTC).date().isoformat()
        return tenant_id, day
