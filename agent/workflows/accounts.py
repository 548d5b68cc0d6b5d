"""The account-directory port: who the users of a tenant are, and the tenant's plan.

Every look-up is scoped to one tenant, so a workflow can never learn (or reveal) that an
email address belongs to a user of another tenant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from agent.workflows.base import as_utc, jsonable

#: Requests per minute per tenant by plan (KB "API rate limits and handling HTTP 429").
PLAN_RATE_LIMITS: Mapping[str, int] = {"Starter": 100, "Professional": 1000, "Enterprise": 5000}


@dataclass(frozen=True, slots=True)
class User:
    """A user of one tenant. ``locked_until`` is set while a sign-in lockout lasts."""

    id: str
    tenant_id: str
    email: str
    name: str
    locked_until: datetime | None = None

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and as_utc(self.locked_until) > as_utc(now)

    def to_dict(self) -> dict[str, Any]:
        return dict(jsonable(self))


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer company. ``rate_limit_per_min`` overrides the plan's default limit."""

    id: str
    name: str
    plan: str
    rate_limit_override: int | None = None

    @property
    def rate_limit_per_min(self) -> int | None:
        if self.rate_limit_override is not None:
            return self.rate_limit_override
        return PLAN_RATE_LIMITS.get(self.plan)

    def to_dict(self) -> dict[str, Any]:
        data = dict(jsonable(self))
        data["rate_limit_per_min"] = self.rate_limit_per_min
        return data


class AccountDirectory(Protocol):
    """Users and tenants. Adapters: :class:`InMemoryAccountDirectory` (fixtures)."""

    def find_user(self, tenant_id: str, email: str) -> User | None:
        """The user of ``tenant_id`` with this email (case-insensitive), else None.

        Must return None for an address that only exists in another tenant.
        Raises :class:`~agent.workflows.base.WorkflowError` when the directory is down.
        """
        ...

    def tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant's name and plan, None for an unknown tenant."""
        ...


def normalise_email(email: str) -> str:
    return email.strip().lower()


class InMemoryAccountDirectory:
    """A directory held in dicts, seeded from fixtures (see :mod:`agent.workflows.fixtures`)."""

    def __init__(self, tenants: Iterable[Tenant] = (), users: Iterable[User] = ()) -> None:
        self._tenants = {t.id: t for t in tenants}
        self._users = {(u.tenant_id, normalise_email(u.email)): u for u in users}

    def find_user(self, tenant_id: str, email: str) -> User | None:
        return self._users.get((tenant_id, normalise_email(email)))

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    def users(self, tenant_id: str) -> list[User]:
        return [u for (t, _), u in self._users.items() if t == tenant_id]
