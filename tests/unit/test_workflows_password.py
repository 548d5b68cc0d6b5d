"""Password reset with fakes that implement the ports (the SMTP path is in integration)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from agent.workflows.accounts import AccountDirectory, Tenant, User
from agent.workflows.base import WorkflowError
from agent.workflows.fixtures import Accounts, load_accounts
from agent.workflows.mailer import Mailer, OutgoingEmail
from agent.workflows.password import NOT_VERIFIED, PasswordResetWorkflow, ResetPolicy
from agent.workflows.tokens import InMemoryTokenStore, ResetTokens
from tests.unit.test_workflows_tokens import StepClock

ACCOUNTS_YAML = Path(__file__).resolve().parents[1] / "fixtures" / "accounts.yaml"


def accounts() -> Accounts:
    return load_accounts(ACCOUNTS_YAML)


class RecordingMailer(Mailer):
    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []

    def send(self, email: OutgoingEmail) -> str:
        self.sent.append(email)
        return email.message_id


class DownMailer(Mailer):
    def send(self, email: OutgoingEmail) -> str:
        raise WorkflowError("smtp: ConnectionRefusedError: [Errno 111] Connection refused")


class DownDirectory(AccountDirectory):
    def find_user(self, tenant_id: str, email: str) -> User | None:
        raise WorkflowError("directory: timeout")

    def tenant(self, tenant_id: str) -> Tenant | None:
        raise WorkflowError("directory: timeout")


def token_from(email: OutgoingEmail) -> str:
    link = next(line for line in email.body.splitlines() if "token=" in line)
    return parse_qs(urlparse(link.strip()).query)["token"][0]


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def workflow(clock: StepClock, mailer: RecordingMailer) -> PasswordResetWorkflow:
    tokens = ResetTokens(InMemoryTokenStore(), clock=clock)
    return PasswordResetWorkflow(accounts().directory(), tokens, mailer, clock=clock)


def test_fixture_has_the_tenants_users_and_plans() -> None:
    data = accounts()
    assert {t.id: t.plan for t in data.tenants} == {"acme": "Professional", "globex": "Starter"}
    assert {t.id: t.rate_limit_per_min for t in data.tenants} == {"acme": 1000, "globex": 100}
    assert sorted(u.email for u in data.users if u.tenant_id == "acme") == [
        "dana@acme.example",
        "li.wei@acme.example",
        "priya@acme.example",
        "sam.ortiz@acme.example",
    ]


def test_sends_a_single_use_link_to_the_user(
    workflow: PasswordResetWorkflow, mailer: RecordingMailer, clock: StepClock
) -> None:
    result = workflow.run("acme", "Dana@Acme.example ")
    assert result.status == "sent"
    assert result.user_id == "u-acme-dana"
    assert result.expires_at == clock.now + timedelta(minutes=30)
    (mail,) = mailer.sent
    assert mail.to == "dana@acme.example"
    assert result.message_id == mail.message_id
    assert mail.body.startswith("Hello Dana Whitfield")
    token = token_from(mail)
    assert token not in json.dumps(result.to_dict())
    assert workflow.tokens.redeem(token).ok
    assert not workflow.tokens.redeem(token).ok


def test_email_of_another_tenant_is_not_verified_and_not_revealed(
    workflow: PasswordResetWorkflow, mailer: RecordingMailer
) -> None:
    other_tenant = workflow.run("acme", "hank@globex.example")
    nowhere = workflow.run("acme", "nobody@nowhere.example")
    assert other_tenant.status == nowhere.status == "identity_not_verified"
    assert other_tenant.to_dict() == nowhere.to_dict()
    assert other_tenant.reason == NOT_VERIFIED
    assert mailer.sent == []


def test_locked_account_gets_a_link_because_a_reset_unlocks_it(
    workflow: PasswordResetWorkflow, mailer: RecordingMailer
) -> None:
    result = workflow.run("acme", "sam.ortiz@acme.example")
    assert result.status == "sent"
    assert result.locked_until is not None
    assert "unlocks" in result.reason
    assert len(mailer.sent) == 1


def test_locked_account_is_refused_when_policy_says_reset_does_not_unlock(
    clock: StepClock, mailer: RecordingMailer
) -> None:
    tokens = ResetTokens(InMemoryTokenStore(), clock=clock)
    policy = ResetPolicy(reset_unlocks=False)
    wf = PasswordResetWorkflow(accounts().directory(), tokens, mailer, policy=policy, clock=clock)
    assert wf.run("acme", "sam.ortiz@acme.example").status == "locked"
    clock.advance(minutes=15)  # the 15-minute lock has run out
    assert wf.run("acme", "sam.ortiz@acme.example").status == "sent"


def test_at_most_five_links_per_hour(
    workflow: PasswordResetWorkflow, mailer: RecordingMailer, clock: StepClock
) -> None:
    for _ in range(5):
        assert workflow.run("acme", "priya@acme.example").status == "sent"
        clock.advance(minutes=5)
    blocked = workflow.run("acme", "priya@acme.example")
    assert (blocked.status, blocked.reason) == ("locked", "reset link limit reached: 5 per hour")
    clock.advance(minutes=40)
    assert workflow.run("acme", "priya@acme.example").status == "sent"


def test_mailer_failure_is_an_error_result(clock: StepClock) -> None:
    tokens = ResetTokens(InMemoryTokenStore(), clock=clock)
    wf = PasswordResetWorkflow(accounts().directory(), tokens, DownMailer(), clock=clock)
    result = wf.run("acme", "dana@acme.example")
    assert result.status == "error"
    assert result.reason.startswith("smtp:")


def test_directory_failure_is_an_error_result(clock: StepClock, mailer: RecordingMailer) -> None:
    tokens = ResetTokens(InMemoryTokenStore(), clock=clock)
    wf = PasswordResetWorkflow(DownDirectory(), tokens, mailer, clock=clock)
    assert wf.run("acme", "dana@acme.example").status == "error"


def test_empty_email_is_not_verified(workflow: PasswordResetWorkflow) -> None:
    assert workflow.run("acme", "  ").status == "identity_not_verified"
