"""Invoices and refunds against the in-memory billing adapter, with a pinned clock."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agent.workflows.base import WorkflowError
from agent.workflows.billing import BillingWorkflow, InMemoryBilling, RefundPolicy, refund_decision
from tests.unit.test_workflows_password import accounts
from tests.unit.test_workflows_tokens import StepClock

NOW = datetime(2026, 9, 12, 12, 0, tzinfo=UTC)


@pytest.fixture
def port() -> InMemoryBilling:
    return accounts().billing()


@pytest.fixture
def billing(port: InMemoryBilling) -> BillingWorkflow:
    return BillingWorkflow(port, clock=StepClock(NOW))


def test_lookup_by_number(billing: BillingWorkflow) -> None:
    found = billing.lookup("acme", "inv-2026-0103")
    assert found.outcome == "invoice_sent"
    assert found.invoice is not None
    assert (found.invoice.amount, found.invoice.currency) == (Decimal("490.00"), "EUR")
    assert found.to_dict()["invoice"]["download_path"] == "/billing/invoices/INV-2026-0103.pdf"
    assert found.to_dict()["invoice"]["amount"] == "490.00"


def test_last_invoice_is_the_newest(billing: BillingWorkflow) -> None:
    acme, globex = billing.lookup("acme", None), billing.lookup("globex", None)
    assert acme.invoice is not None and acme.invoice.number == "INV-2026-0103"
    assert globex.invoice is not None and globex.invoice.number == "INV-2026-0202"


def test_another_tenants_invoice_is_not_found_like_a_missing_one(billing: BillingWorkflow) -> None:
    other = billing.lookup("acme", "INV-2026-0201")
    missing = billing.lookup("acme", "INV-2026-9999")
    assert other == missing
    assert other.outcome == "invoice_not_found"
    assert billing.refund("acme", "INV-2026-0201").outcome == "invoice_not_found"


def test_unknown_tenant_has_no_last_invoice(billing: BillingWorkflow) -> None:
    assert billing.lookup("initech", None).outcome == "invoice_not_found"


def test_small_recent_charge_is_refunded_automatically(
    billing: BillingWorkflow, port: InMemoryBilling
) -> None:
    r = billing.refund("acme", "INV-2026-0102", reason="didn't use the seats")
    assert (r.outcome, r.reason) == ("refund_issued", "refunded")
    assert r.refund is not None and r.refund.amount == Decimal("49.00")
    assert len(port.payouts) == 1


def test_second_refund_request_does_not_pay_twice(
    billing: BillingWorkflow, port: InMemoryBilling
) -> None:
    first = billing.refund("globex", "INV-2026-0201")
    again = billing.refund("globex", "INV-2026-0201")
    assert first.outcome == again.outcome == "refund_issued"
    assert again.reason == "already_refunded"
    assert first.refund is not None and again.refund is not None
    assert first.refund.refund_id == again.refund.refund_id
    assert len(port.payouts) == 1


def test_port_refund_is_idempotent_per_invoice(port: InMemoryBilling) -> None:
    port.refund("acme", "INV-2026-0102", Decimal(10), "x")
    second = port.refund("acme", "INV-2026-0102", Decimal(10), "x")
    assert second.status == "already_refunded"
    assert len(port.payouts) == 1


def test_over_the_limit_escalates(billing: BillingWorkflow, port: InMemoryBilling) -> None:
    for tenant, number in (("acme", "INV-2026-0103"), ("globex", "INV-2026-0202")):
        r = billing.refund(tenant, number)
        assert (r.outcome, r.reason) == ("escalate", "refund_over_limit")
    assert port.payouts == []


def test_partial_refund_under_the_limit_is_automatic(billing: BillingWorkflow) -> None:
    r = billing.refund("acme", "INV-2026-0103", Decimal("60"), "EUR")
    assert r.outcome == "refund_issued"
    assert r.refund is not None and r.refund.amount == Decimal(60)


def test_outside_the_window_escalates(billing: BillingWorkflow) -> None:
    r = billing.refund("acme", "INV-2026-0101")
    assert (r.outcome, r.reason) == ("escalate", "refund_window_passed")


def test_window_boundary_is_fourteen_days() -> None:
    wf = accounts()
    invoice = next(i for i in wf.invoices if i.number == "INV-2026-0102")
    charged = invoice.charged_at
    assert charged is not None
    on_day_14 = charged.replace(day=15)
    just_after = on_day_14.replace(second=1)
    policy = RefundPolicy()
    assert refund_decision(invoice, Decimal(49), None, on_day_14, policy) == "auto_refund"
    assert refund_decision(invoice, Decimal(49), None, just_after, policy) == "refund_window_passed"


def test_configurable_limit(port: InMemoryBilling) -> None:
    strict = BillingWorkflow(
        port, policy=RefundPolicy(auto_limit=Decimal(40)), clock=StepClock(NOW)
    )
    assert strict.refund("acme", "INV-2026-0102").reason == "refund_over_limit"


def test_bad_amounts_and_currencies_are_rejected(billing: BillingWorkflow) -> None:
    too_much = billing.refund("acme", "INV-2026-0102", Decimal("50"))
    wrong_currency = billing.refund("acme", "INV-2026-0102", Decimal("49"), "USD")
    assert (too_much.outcome, too_much.reason) == ("refund_rejected", "amount_invalid")
    assert wrong_currency.reason == "currency_mismatch"


def test_the_customers_stated_charge_date_decides_the_window(billing: BillingWorkflow) -> None:
    # INV-2026-0101 is recorded as charged 2026-08-01; the customer says "5 days ago"
    inside = billing.refund("acme", "INV-2026-0101", charged_on="2026-09-07")
    assert inside.outcome == "refund_issued"
    # INV-2026-0102 is recorded within the window; the customer says "two months ago"
    outside = billing.refund("acme", "INV-2026-0102", charged_on="2026-07-14")
    assert (outside.outcome, outside.reason) == ("escalate", "refund_window_passed")
    # the limit is never relaxed by a stated date
    over = billing.refund("acme", "INV-2026-0103", charged_on="2026-09-11")
    assert (over.outcome, over.reason) == ("escalate", "refund_over_limit")


def test_a_stated_charge_date_that_is_no_date_is_a_clear_error(billing: BillingWorkflow) -> None:
    with pytest.raises(WorkflowError, match="not an ISO date"):
        billing.refund("acme", "INV-2026-0102", charged_on="last tuesday")
