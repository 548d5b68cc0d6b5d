"""Invoices and refunds: the :class:`BillingPort`, an in-memory adapter, and the policy.

The policy (KB "Refunds", v2): a charge can be refunded within 14 days; support refunds
automatically up to 100 in the invoice's currency, above that the billing team decides.
:func:`refund_decision` is pure; :class:`BillingWorkflow` applies it and calls the port.
Invoices of another tenant are simply not found: the reason is the same as for a number
that does not exist.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from agent.workflows.base import Clock, WorkflowError, as_utc, jsonable, utc_now

RefundStatus = Literal["refunded", "already_refunded"]
RefundVerdict = Literal[
    "auto_refund",
    "already_refunded",
    "refund_over_limit",
    "refund_window_passed",
    "amount_invalid",
    "currency_mismatch",
]


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    tenant_id: str
    amount: Decimal
    currency: str
    issued_on: date
    charged_at: datetime | None
    status: str = "paid"
    refunded_amount: Decimal = Decimal(0)

    @property
    def download_path(self) -> str:
        return f"/billing/invoices/{self.number}.pdf"

    def to_dict(self) -> dict[str, Any]:
        data = dict(jsonable(self))
        data["download_path"] = self.download_path
        return data


@dataclass(frozen=True, slots=True)
class RefundResult:
    status: RefundStatus
    refund_id: str
    invoice: str
    amount: Decimal
    currency: str

    def to_dict(self) -> dict[str, Any]:
        return dict(jsonable(self))


class BillingPort(Protocol):
    """A tenant's invoices and refunds. Adapters: :class:`InMemoryBilling`.
    Failures raise :class:`~agent.workflows.base.WorkflowError`."""

    def invoices(self, tenant_id: str) -> list[Invoice]:
        """The tenant's invoices, newest first."""
        ...

    def invoice(self, tenant_id: str, number: str) -> Invoice | None:
        """None when the number does not exist or belongs to another tenant."""
        ...

    def refund(self, tenant_id: str, invoice: str, amount: Decimal, reason: str) -> RefundResult:
        """Refund ``amount`` of the invoice. Idempotent per invoice: a second call returns
        the first refund with ``status="already_refunded"`` and moves no money."""
        ...


class InMemoryBilling:
    def __init__(self, invoices: Iterable[Invoice] = ()) -> None:
        self._invoices = {(i.tenant_id, i.number.upper()): i for i in invoices}
        self._refunds: dict[tuple[str, str], RefundResult] = {}
        self._lock = threading.Lock()
        #: Every refund that moved money, in order (tests check nothing is paid twice).
        self.payouts: list[RefundResult] = []

    def invoices(self, tenant_id: str) -> list[Invoice]:
        mine = [i for (t, _), i in self._invoices.items() if t == tenant_id]
        return sorted(mine, key=lambda i: (i.issued_on, i.number), reverse=True)

    def invoice(self, tenant_id: str, number: str) -> Invoice | None:
        return self._invoices.get((tenant_id, number.strip().upper()))

    def refund(self, tenant_id: str, invoice: str, amount: Decimal, reason: str) -> RefundResult:
        key = (tenant_id, invoice.strip().upper())
        with self._lock:
            if key in self._refunds:
                return replace(self._refunds[key], status="already_refunded")
            found = self._invoices.get(key)
            if found is None:
                raise WorkflowError(f"billing: no invoice {invoice}")
            result = RefundResult(
                "refunded", f"RF-{found.number}", found.number, amount, found.currency
            )
            self._refunds[key] = result
            self._invoices[key] = replace(found, refunded_amount=found.refunded_amount + amount)
            self.payouts.append(result)
            return result


@dataclass(frozen=True, slots=True)
class RefundPolicy:
    window: timedelta = timedelta(days=14)
    auto_limit: Decimal = Decimal(100)


def refund_decision(
    invoice: Invoice,
    amount: Decimal,
    currency: str | None,
    now: datetime,
    policy: RefundPolicy,
    stated_charge: date | None = None,
) -> RefundVerdict:
    """What to do with a refund request (pure). Order: already refunded, bad amount,
    window, limit.

    ``stated_charge`` is the day the customer says they were charged ("5 days ago"):
    the window is judged on it when given (the conversation suite's convention, README
    "refunds"), else on the billing record's ``charged_at``. The limit is never relaxed.
    """
    if invoice.refunded_amount > 0:
        return "already_refunded"
    if currency is not None and currency.upper() != invoice.currency.upper():
        return "currency_mismatch"
    if amount <= 0 or amount > invoice.amount:
        return "amount_invalid"
    charged = invoice.charged_at
    if stated_charge is not None:
        charged = datetime(stated_charge.year, stated_charge.month, stated_charge.day, tzinfo=UTC)
    if charged is None or as_utc(now) - as_utc(charged) > policy.window:
        return "refund_window_passed"
    if amount > policy.auto_limit:
        return "refund_over_limit"
    return "auto_refund"


InvoiceOutcome = Literal["invoice_sent", "invoice_not_found"]
RefundOutcome = Literal["refund_issued", "escalate", "refund_rejected", "invoice_not_found"]


@dataclass(frozen=True, slots=True)
class InvoiceLookup:
    outcome: InvoiceOutcome
    invoice: Invoice | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "invoice": None if self.invoice is None else self.invoice.to_dict(),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class RefundOutcomeResult:
    """``reason`` is the verdict (e.g. ``refund_over_limit``) when no money moved."""

    outcome: RefundOutcome
    reason: str
    invoice: Invoice | None = None
    refund: RefundResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "invoice": None if self.invoice is None else self.invoice.to_dict(),
            "refund": None if self.refund is None else self.refund.to_dict(),
        }


class BillingWorkflow:
    def __init__(
        self, billing: BillingPort, *, policy: RefundPolicy | None = None, clock: Clock = utc_now
    ) -> None:
        self.billing, self.policy, self.clock = billing, policy or RefundPolicy(), clock

    def lookup(self, tenant_id: str, number: str | None) -> InvoiceLookup:
        """By number, or the latest invoice when ``number`` is None ("my last invoice")."""
        if number:
            found = self.billing.invoice(tenant_id, number)
        else:
            found = next(iter(self.billing.invoices(tenant_id)), None)
        if found is None or found.tenant_id != tenant_id:
            return InvoiceLookup("invoice_not_found", reason="invoice not found")
        return InvoiceLookup("invoice_sent", found)

    def refund(
        self,
        tenant_id: str,
        number: str | None,
        amount: Decimal | None = None,
        currency: str | None = None,
        reason: str = "customer request",
        charged_on: str | None = None,
    ) -> RefundOutcomeResult:
        """``amount`` None means the whole invoice; ``charged_on`` (ISO date) is when the
        customer says the charge happened (see :func:`refund_decision`)."""
        found = self.lookup(tenant_id, number).invoice
        if found is None:
            return RefundOutcomeResult("invoice_not_found", "invoice not found")
        wanted = found.amount if amount is None else amount
        try:
            stated = date.fromisoformat(charged_on) if charged_on else None
        except ValueError:
            raise WorkflowError(f"billing: charged_on {charged_on!r} is not an ISO date") from None
        now = as_utc(self.clock())
        verdict = refund_decision(found, wanted, currency, now, self.policy, stated)
        if verdict in ("auto_refund", "already_refunded"):
            refund = self.billing.refund(tenant_id, found.number, wanted, reason)
            return RefundOutcomeResult("refund_issued", refund.status, found, refund)
        if verdict in ("refund_over_limit", "refund_window_passed"):
            return RefundOutcomeResult("escalate", verdict, found)
        return RefundOutcomeResult("refund_rejected", verdict, found)
