"""The one place :class:`~agent.workflows.actions.Workflows` is built from settings.

Reads, from any settings object, with these defaults when a field is missing or None:

- ``workflows_accounts_path`` (None): YAML that seeds the in-memory directory and billing
  (format in :mod:`agent.workflows.fixtures`); without it both start empty.
- ``reset_token_store`` (``memory://``): ``memory://`` or ``sqlite:///path/to/tokens.db``.
- ``smtp_host`` (``127.0.0.1``), ``smtp_port`` (25), ``smtp_timeout_s`` (10),
  ``smtp_starttls`` (False), ``smtp_username``, ``smtp_password``,
  ``mail_sender`` (``Casestream CRM <no-reply@casestream.io>``),
  ``reset_link_base_url`` (``https://app.casestream.io/reset-password``),
  ``reset_unlocks_account`` (True).
- ``refund_auto_limit`` (100, in the invoice's currency), ``refund_window_days`` (14).

Keyword overrides replace adapters (tests pass fakes that subclass nothing but the port).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from agent.workflows.accounts import AccountDirectory, InMemoryAccountDirectory
from agent.workflows.actions import Workflows
from agent.workflows.base import Clock, utc_now
from agent.workflows.billing import BillingPort, BillingWorkflow, InMemoryBilling, RefundPolicy
from agent.workflows.fixtures import Accounts, load_accounts
from agent.workflows.mailer import DEFAULT_RESET_URL, DEFAULT_SENDER, Mailer, SmtpMailer
from agent.workflows.password import PasswordResetWorkflow, ResetPolicy
from agent.workflows.tokens import InMemoryTokenStore, ResetTokens, SQLiteTokenStore, TokenStore


def _get(settings: object, name: str, default: Any) -> Any:
    value = getattr(settings, name, None)
    return default if value is None else value


def token_store_from_url(url: str) -> TokenStore:
    if url in ("", "memory://"):
        return InMemoryTokenStore()
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://").removeprefix("/") or ":memory:"
        return SQLiteTokenStore(path)
    raise ValueError(f"unknown reset_token_store URL: {url!r}")


def build_workflows(
    settings: object,
    *,
    accounts: Accounts | None = None,
    directory: AccountDirectory | None = None,
    billing: BillingPort | None = None,
    token_store: TokenStore | None = None,
    mailer: Mailer | None = None,
    clock: Clock | None = None,
) -> Workflows:
    clock = clock or utc_now
    path = getattr(settings, "workflows_accounts_path", None)
    if accounts is None and path:
        accounts = load_accounts(str(path))
    if directory is None:
        directory = accounts.directory() if accounts else InMemoryAccountDirectory()
    if billing is None:
        billing = accounts.billing() if accounts else InMemoryBilling()
    if token_store is None:
        token_store = token_store_from_url(str(_get(settings, "reset_token_store", "memory://")))
    if mailer is None:
        mailer = SmtpMailer(
            str(_get(settings, "smtp_host", "127.0.0.1")),
            int(_get(settings, "smtp_port", 25)),
            timeout_s=float(_get(settings, "smtp_timeout_s", 10.0)),
            starttls=bool(_get(settings, "smtp_starttls", False)),
            username=getattr(settings, "smtp_username", None),
            password=getattr(settings, "smtp_password", None),
        )
    reset_policy = ResetPolicy(
        reset_unlocks=bool(_get(settings, "reset_unlocks_account", True)),
        link_base_url=str(_get(settings, "reset_link_base_url", DEFAULT_RESET_URL)),
        sender=str(_get(settings, "mail_sender", DEFAULT_SENDER)),
    )
    refund_policy = RefundPolicy(
        window=timedelta(days=float(_get(settings, "refund_window_days", 14))),
        auto_limit=Decimal(str(_get(settings, "refund_auto_limit", 100))),
    )
    tokens = ResetTokens(token_store, clock=clock)
    password = PasswordResetWorkflow(directory, tokens, mailer, policy=reset_policy, clock=clock)
    return Workflows(
        directory,
        password,
        BillingWorkflow(billing, policy=refund_policy, clock=clock),
        clock=clock,
    )
