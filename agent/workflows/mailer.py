"""The :class:`Mailer` port, its SMTP adapter, and the pure composition of the reset email."""

from __future__ import annotations

import hashlib
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

from agent.workflows.accounts import User
from agent.workflows.base import WorkflowError, as_utc

DEFAULT_SENDER = "Casestream CRM <no-reply@casestream.io>"
DEFAULT_RESET_URL = "https://app.casestream.io/reset-password"
RESET_SUBJECT = "Reset your Casestream CRM password"


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """A plain-text email, fully composed (the message id is chosen by the composer)."""

    to: str
    subject: str
    body: str
    message_id: str
    sender: str = DEFAULT_SENDER
    date: datetime | None = None


class Mailer(Protocol):
    """Sends email. Adapters: :class:`SmtpMailer`, :class:`FileMailer`."""

    def send(self, email: OutgoingEmail) -> str:
        """Deliver ``email`` to the relay; return its Message-ID.

        Raises :class:`~agent.workflows.base.WorkflowError` when the relay refuses it or
        cannot be reached.
        """
        ...


def reset_link(base_url: str, token: str) -> str:
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}{urlencode({'token': token})}"


def reset_email(
    user: User,
    link: str,
    expires_at: datetime,
    *,
    sender: str = DEFAULT_SENDER,
    now: datetime | None = None,
) -> OutgoingEmail:
    """The reset email for ``user``; pure: the Message-ID names the user and the time, so a
    replayed request records the same id."""
    expires = as_utc(expires_at).strftime("%H:%M UTC")
    stamp = as_utc(now).isoformat() if now is not None else expires_at.isoformat()
    body = (
        f"Hello {user.name},\n\n"
        "We received a request to reset the password of your Casestream CRM account.\n"
        "Choose a new password here:\n\n"
        f"{link}\n\n"
        f"The link is valid for 30 minutes (until {expires}) and works only once. If you\n"
        "request another link, only the newest one works. Completing the reset also unlocks\n"
        "your account if it was locked after failed sign-in attempts.\n\n"
        "If you did not ask for this, ignore this email and tell your administrator.\n\n"
        "Casestream CRM Support\n"
    )
    return OutgoingEmail(
        to=user.email,
        subject=RESET_SUBJECT,
        body=body,
        message_id=f"<reset-{_digest(user.tenant_id, user.id, stamp)}@casestream.io>",
        sender=sender,
        date=now,
    )


def _message(email: OutgoingEmail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = email.sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Message-ID"] = email.message_id
    if email.date is not None:
        message["Date"] = format_datetime(as_utc(email.date))
    message.set_content(email.body)
    return message


class FileMailer:
    """Writes each email as an ``.eml`` file under ``directory`` (no SMTP relay set up)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, email: OutgoingEmail) -> str:
        name = email.message_id.strip("<>").replace("@", "_").replace("/", "_")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{name}.eml").write_bytes(bytes(_message(email)))
        except OSError as exc:
            raise WorkflowError(f"mail file: {type(exc).__name__}: {exc}") from exc
        return email.message_id


class SmtpMailer:
    """Sends through an SMTP relay with :mod:`smtplib` (optional STARTTLS and login)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float = 10.0,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.starttls, self.username, self.password = starttls, username, password

    def send(self, email: OutgoingEmail) -> str:
        message = _message(email)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise WorkflowError(f"smtp: {type(exc).__name__}: {exc}") from exc
        if refused:
            raise WorkflowError(f"smtp: recipients refused: {sorted(refused)}")
        return email.message_id


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
