"""Seed the in-memory adapters from a mapping or a YAML file (``tests/fixtures/accounts.yaml``).

Format (also what a conversation's ``fixtures`` object may hold)::

    tenants:
      acme:
        name: Acme Corp
        plan: Professional            # Starter | Professional | Enterprise
        rate_limit_per_min: 1000      # optional, overrides the plan's limit
        users:
          - {id: u-acme-dana, email: dana@acme.example, name: Dana Whitfield,
             locked_until: 2026-09-12T10:15:00Z}   # locked_until optional
        invoices:
          - {number: INV-2026-0101, amount: "49.00", currency: EUR,
             issued_on: 2026-08-01, charged_at: 2026-08-01T06:00:00Z, status: paid}

A user without ``id`` gets ``u-<tenant>-<local part>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from agent.workflows.accounts import InMemoryAccountDirectory, Tenant, User
from agent.workflows.billing import InMemoryBilling, Invoice


@dataclass(frozen=True, slots=True)
class Accounts:
    tenants: tuple[Tenant, ...] = ()
    users: tuple[User, ...] = ()
    invoices: tuple[Invoice, ...] = field(default_factory=tuple)

    def directory(self) -> InMemoryAccountDirectory:
        return InMemoryAccountDirectory(self.tenants, self.users)

    def billing(self) -> InMemoryBilling:
        return InMemoryBilling(self.invoices)


def _datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def accounts_from_mapping(data: Mapping[str, Any]) -> Accounts:
    tenants, users, invoices = [], [], []
    for tenant_id, spec in (data.get("tenants") or {}).items():
        tid = str(tenant_id)
        limit = spec.get("rate_limit_per_min")
        tenants.append(
            Tenant(
                id=tid,
                name=str(spec.get("name", tid)),
                plan=str(spec.get("plan", "Starter")),
                rate_limit_override=None if limit is None else int(limit),
            )
        )
        for u in spec.get("users") or ():
            email = str(u["email"])
            users.append(
                User(
                    id=str(u.get("id") or f"u-{tid}-{email.split('@')[0]}"),
                    tenant_id=tid,
                    email=email,
                    name=str(u.get("name", email.split("@")[0])),
                    locked_until=_datetime(u.get("locked_until")),
                )
            )
        for inv in spec.get("invoices") or ():
            invoices.append(
                Invoice(
                    number=str(inv["number"]).upper(),
                    tenant_id=tid,
                    amount=Decimal(str(inv["amount"]).replace(",", "")),
                    currency=str(inv.get("currency", "EUR")).upper(),
                    issued_on=_date(inv["issued_on"]),
                    charged_at=_datetime(inv.get("charged_at", inv["issued_on"])),
                    status=str(inv.get("status", "paid")),
                    refunded_amount=Decimal(str(inv.get("refunded_amount", 0))),
                )
            )
    return Accounts(tuple(tenants), tuple(users), tuple(invoices))


def load_accounts(path: str | Path) -> Accounts:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    return accounts_from_mapping(data)
