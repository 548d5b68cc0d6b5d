"""The action interface: dispatch, status mapping, JSON-ready results, never raising."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from agent.workflows import ActionRequest, ActionResult, Workflows, build_workflows
from agent.workflows.accounts import AccountDirectory, Tenant, User
from agent.workflows.billing import BillingPort, Invoice, RefundResult
from agent.workflows.tokens import InMemoryTokenStore
from agent.workflows.wiring import token_store_from_url
from tests.unit.test_workflows_api import CURL_429, POSTMAN_400, PY_401_NO_BODY
from tests.unit.test_workflows_billing import NOW
from tests.unit.test_workflows_password import ACCOUNTS_YAML, RecordingMailer, accounts
from tests.unit.test_workflows_tokens import StepClock


class Settings:
    workflows_accounts_path = str(ACCOUNTS_YAML)
    refund_auto_limit: str | None = None


class ExplodingBilling(BillingPort):
    def invoices(self, tenant_id: str) -> list[Invoice]:
        raise RuntimeError("billing API returned 502")

    def invoice(self, tenant_id: str, number: str) -> Invoice | None:
        raise RuntimeError("billing API returned 502")

    def refund(self, tenant_id: str, invoice: str, amount: Decimal, reason: str) -> RefundResult:
        raise RuntimeError("billing API returned 502")


class ExplodingDirectory(AccountDirectory):
    def find_user(self, tenant_id: str, email: str) -> User | None:
        raise ConnectionError("directory unreachable")

    def tenant(self, tenant_id: str) -> Tenant | None:
        raise ConnectionError("directory unreachable")


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def workflows(mailer: RecordingMailer) -> Workflows:
    return build_workflows(Settings(), mailer=mailer, clock=StepClock(NOW))


def act(wf: Workflows, kind: str, tenant: str = "acme", **params: str) -> ActionResult:
    result = wf.perform(ActionRequest(kind, tenant, "conv-1", params))  # type: ignore[arg-type]
    assert ActionResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    return result


def test_password_reset_sent(workflows: Workflows, mailer: RecordingMailer) -> None:
    r = act(workflows, "password_reset", email="li.wei@acme.example")
    assert (r.status, r.outcome) == ("completed", "password_reset_sent")
    assert r.details["user_id"] == "u-acme-liwei"
    assert r.details["message_id"] == mailer.sent[0].message_id
    assert r.details["expires_at"] == "2026-09-12T12:30:00+00:00"


def test_password_reset_other_tenant(workflows: Workflows, mailer: RecordingMailer) -> None:
    r = act(workflows, "password_reset", tenant="globex", email="dana@acme.example")
    assert (r.status, r.outcome) == ("rejected", "identity_not_verified")
    assert "user_id" not in r.details
    assert mailer.sent == []


def test_password_reset_without_email_needs_info(workflows: Workflows) -> None:
    r = act(workflows, "password_reset")
    assert (r.status, r.details["missing"]) == ("needs_info", "email")


def test_api_diagnosis_uses_the_tenants_plan(workflows: Workflows) -> None:
    acme = act(workflows, "api_diagnosis", text=CURL_429)
    globex = act(workflows, "api_diagnosis", tenant="globex", text=CURL_429)
    assert acme.outcome == globex.outcome == "rate_limit_explained"
    assert (acme.details["plan"], acme.details["limit_per_min"]) == ("Professional", "1000")
    assert (globex.details["plan"], globex.details["limit_per_min"]) == ("Starter", "100")
    assert "Starter plan allows 100" in globex.details["fix"]


def test_api_diagnosis_time_comes_from_the_request(workflows: Workflows) -> None:
    text = PY_401_NO_BODY + "\nI got the token at 10:30"
    early = act(workflows, "api_diagnosis", text=text, now="2026-09-12T11:00:00+00:00")
    late = act(workflows, "api_diagnosis", text=text, now="2026-09-12T11:45:00+00:00")
    assert (early.status, early.outcome) == ("needs_info", "needs_more_info")
    assert (late.status, late.outcome) == ("completed", "token_expiry_identified")


def test_api_diagnosis_field(workflows: Workflows) -> None:
    r = act(workflows, "api_diagnosis", text=POSTMAN_400)
    assert (r.outcome, r.details["field"]) == ("malformed_field_identified", "email")


def test_server_error_escalates(workflows: Workflows) -> None:
    r = act(workflows, "api_diagnosis", text="HTTP/1.1 503 Service Unavailable")
    assert (r.status, r.outcome) == ("escalated", "escalate")


def test_invoice_lookup(workflows: Workflows) -> None:
    last = act(workflows, "invoice_lookup", tenant="globex")
    assert (last.status, last.outcome) == ("completed", "invoice_sent")
    assert last.details["number"] == "INV-2026-0202"
    assert last.details["download_path"] == "/billing/invoices/INV-2026-0202.pdf"
    assert last.details["amount"] == "1200.00"
    leaked = act(workflows, "invoice_lookup", tenant="globex", invoice="INV-2026-0101")
    assert (leaked.status, leaked.outcome, leaked.details) == ("not_found", "invoice_not_found", {})


def test_refunds(workflows: Workflows) -> None:
    issued = act(workflows, "refund", invoice="INV-2026-0102", reason="unused seats")
    again = act(workflows, "refund", invoice="INV-2026-0102")
    over = act(workflows, "refund", invoice="INV-2026-0103")
    late = act(workflows, "refund", invoice="INV-2026-0101")
    assert (issued.status, issued.outcome, issued.reason) == (
        "completed",
        "refund_issued",
        "refunded",
    )
    assert issued.details["refund_amount"] == "49.00"
    assert again.reason == "already_refunded"
    assert again.details["refund_refund_id"] == issued.details["refund_refund_id"]
    assert (over.status, over.outcome, over.reason) == (
        "escalated",
        "escalate",
        "refund_over_limit",
    )
    assert (late.outcome, late.reason) == ("escalate", "refund_window_passed")


def test_refund_with_bad_amount_needs_info(workflows: Workflows) -> None:
    r = act(workflows, "refund", invoice="INV-2026-0102", amount="lots")
    assert (r.status, r.details["missing"]) == ("needs_info", "amount")


def test_adapter_exceptions_become_error_results() -> None:
    wf = build_workflows(
        Settings(),
        directory=ExplodingDirectory(),
        billing=ExplodingBilling(),
        mailer=RecordingMailer(),
        clock=StepClock(NOW),
    )
    for kind, params in (
        ("password_reset", {"email": "dana@acme.example"}),
        ("api_diagnosis", {"text": CURL_429}),
        ("invoice_lookup", {}),
        ("refund", {"invoice": "INV-2026-0102"}),
    ):
        r = act(wf, kind, **params)
        assert (r.status, r.outcome) == ("error", "error"), kind
        assert r.reason


def test_unknown_kind_is_rejected(workflows: Workflows) -> None:
    assert act(workflows, "teleport").status == "rejected"


def test_settings_choose_the_token_store_and_limit(mailer: RecordingMailer) -> None:
    assert isinstance(token_store_from_url("memory://"), InMemoryTokenStore)
    with pytest.raises(ValueError):
        token_store_from_url("redis://localhost")

    class Strict(Settings):
        refund_auto_limit = "40"

    wf = build_workflows(Strict(), accounts=accounts(), mailer=mailer, clock=StepClock(NOW))
    assert act(wf, "refund", invoice="INV-2026-0102").reason == "refund_over_limit"
