"""Password reset: verify the email against the tenant's directory, issue a single-use
token, and mail the link.

The result is plain data for the event log. It never carries the token, and the reason
for a failed verification is the same whether the address is unknown everywhere or
belongs to another tenant, so nothing leaks across tenants.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.workflows.accounts import AccountDirectory, User
from agent.workflows.base import Clock, WorkflowError, as_utc, jsonable, utc_now
from agent.workflows.mailer import (
    DEFAULT_RESET_URL,
    DEFAULT_SENDER,
    Mailer,
    reset_email,
    reset_link,
)
from agent.workflows.tokens import ResetTokens

ResetStatus = Literal["sent", "identity_not_verified", "locked", "error"]
NOT_VERIFIED = "email is not a user of this tenant"


@dataclass(frozen=True, slots=True)
class PasswordResetResult:
    """``locked`` means no link was sent: the reset-link limit is reached, or the account
    is locked and the policy says a reset must not unlock it. ``expires_at`` is when the
    link stops working; ``locked_until`` is reported when a sign-in lockout is active."""

    status: ResetStatus
    reason: str = ""
    user_id: str | None = None
    message_id: str | None = None
    expires_at: datetime | None = None
    locked_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(jsonable(self))


@dataclass(frozen=True, slots=True)
class ResetPolicy:
    """KB defaults: at most 5 links per hour; completing a reset unlocks a locked account."""

    max_links: int = 5
    per: timedelta = timedelta(hours=1)
    reset_unlocks: bool = True
    link_base_url: str = DEFAULT_RESET_URL
    sender: str = DEFAULT_SENDER


class PasswordResetWorkflow:
    def __init__(
        self,
        directory: AccountDirectory,
        tokens: ResetTokens,
        mailer: Mailer,
        *,
        policy: ResetPolicy | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.directory, self.tokens, self.mailer = directory, tokens, mailer
        self.policy = policy or ResetPolicy()
        self.clock = clock

    def run(self, tenant_id: str, email: str) -> PasswordResetResult:
        """Never raises: adapter failures come back as ``status="error"``."""
        try:
            return self._run(tenant_id, email)
        except WorkflowError as exc:
            return PasswordResetResult("error", reason=exc.reason)

    def _run(self, tenant_id: str, email: str) -> PasswordResetResult:
        now = as_utc(self.clock())
        user = self.directory.find_user(tenant_id, email) if email.strip() else None
        if user is None or user.tenant_id != tenant_id:
            return PasswordResetResult("identity_not_verified", reason=NOT_VERIFIED)
        blocked = self._blocked(user, now)
        if blocked is not None:
            return blocked
        token, record = self.tokens.issue(tenant_id, user.id)
        link = reset_link(self.policy.link_base_url, token)
        mail = reset_email(user, link, record.expires_at, sender=self.policy.sender, now=now)
        message_id = self.mailer.send(mail)
        locked = user.locked_until if user.locked_at(now) else None
        return PasswordResetResult(
            "sent",
            reason="reset link sent; completing it unlocks the account" if locked else "",
            user_id=user.id,
            message_id=message_id,
            expires_at=record.expires_at,
            locked_until=locked,
        )

    def _blocked(self, user: User, now: datetime) -> PasswordResetResult | None:
        if user.locked_at(now) and not self.policy.reset_unlocks:
            return PasswordResetResult(
                "locked", reason="account locked", user_id=user.id, locked_until=user.locked_until
            )
        recent = self.tokens.store.issued_since(user.tenant_id, user.id, now - self.policy.per)
        if recent >= self.policy.max_links:
            return PasswordResetResult(
                "locked",
                reason=f"reset link limit reached: {self.policy.max_links} per hour",
                user_id=user.id,
            )
        return None
