"""Password reset over real SMTP: smtplib -> a local aiosmtpd server the test reads."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from aiosmtpd.controller import Controller

from agent.workflows import ActionRequest, Workflows, build_workflows
from agent.workflows.mailer import RESET_SUBJECT, SmtpMailer, reset_email
from agent.workflows.tokens import ResetTokens, SQLiteTokenStore
from tests.unit.test_workflows_billing import NOW
from tests.unit.test_workflows_password import ACCOUNTS_YAML, accounts
from tests.unit.test_workflows_tokens import StepClock

pytestmark = pytest.mark.integration


class Inbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._arrived:
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.messages.append(parsed)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= count, timeout)
        return list(self.messages)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class Settings:
    def __init__(self, port: int, db: Path) -> None:
        self.workflows_accounts_path = str(ACCOUNTS_YAML)
        self.smtp_host = "127.0.0.1"
        self.smtp_port = port
        self.smtp_timeout_s = 5.0
        self.reset_token_store = f"sqlite:///{db}"
        self.reset_link_base_url = "https://app.casestream.io/reset-password"


def link_token(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    link = next(line for line in body.get_content().splitlines() if "token=" in line)
    assert link.startswith("https://app.casestream.io/reset-password?token=")
    token: str = parse_qs(urlparse(link).query)["token"][0]
    return token


def redeem(wf: Workflows, token: str) -> str:
    return wf.password.tokens.redeem(token).status


def test_reset_email_arrives_and_its_link_works_once(
    smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    clock = StepClock(NOW)
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=clock)
    result = wf.perform(
        ActionRequest("password_reset", "acme", "conv-7", {"email": "dana@acme.example"})
    )
    assert (result.status, result.outcome) == ("completed", "password_reset_sent")
    (mail,) = inbox.wait_for(1)
    assert inbox.envelopes == [("no-reply@casestream.io", ["dana@acme.example"])]
    assert mail["To"] == "dana@acme.example"
    assert mail["Subject"] == RESET_SUBJECT
    assert mail["Message-ID"] == result.details["message_id"]
    token = link_token(mail)
    assert token not in str(result.to_dict())
    assert redeem(wf, token) == "redeemed"
    assert redeem(wf, token) == "used"


def test_link_expires_after_thirty_minutes(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    clock = StepClock(NOW)
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=clock)
    wf.perform(ActionRequest("password_reset", "globex", "c", {"email": "marge@globex.example"}))
    (mail,) = inbox.wait_for(1)
    clock.advance(minutes=30)
    assert redeem(wf, link_token(mail)) == "expired"


def test_only_the_newest_mailed_link_works(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    clock = StepClock(NOW)
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=clock)
    for _ in range(2):
        wf.perform(ActionRequest("password_reset", "acme", "c", {"email": "priya@acme.example"}))
        clock.advance(minutes=1)
    first, second = inbox.wait_for(2)
    assert redeem(wf, link_token(first)) == "superseded"
    assert redeem(wf, link_token(second)) == "redeemed"


def test_other_tenant_gets_no_mail(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=StepClock(NOW))
    result = wf.perform(
        ActionRequest("password_reset", "globex", "c", {"email": "dana@acme.example"})
    )
    assert result.outcome == "identity_not_verified"
    assert inbox.wait_for(1, timeout=0.3) == []


def test_smtp_server_down_is_an_error_result(tmp_path: Path) -> None:
    wf = build_workflows(Settings(free_port(), tmp_path / "tokens.db"), clock=StepClock(NOW))
    result = wf.perform(
        ActionRequest("password_reset", "acme", "c", {"email": "dana@acme.example"})
    )
    assert (result.status, result.outcome) == ("error", "error")
    assert result.reason.startswith("smtp:")


def test_smtp_mailer_sends_date_header(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    user = accounts().directory().find_user("acme", "sam.ortiz@acme.example")
    assert user is not None
    email = reset_email(user, "https://x/reset?token=t", NOW + timedelta(minutes=30), now=NOW)
    SmtpMailer("127.0.0.1", port).send(email)
    (mail,) = inbox.wait_for(1)
    assert mail["Date"] == "Sat, 12 Sep 2026 12:00:00 +0000"
    assert "12:30 UTC" in mail.get_content()


def test_sqlite_token_store_is_what_settings_chose(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    _, port = smtp
    wf = build_workflows(Settings(port, tmp_path / "tokens.db"), clock=StepClock(NOW))
    assert isinstance(wf.password.tokens, ResetTokens)
    assert isinstance(wf.password.tokens.store, SQLiteTokenStore)
