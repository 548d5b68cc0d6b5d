"""Resolution workflows: actions the pure decider requests and adapters perform.

The decider emits an :class:`ActionRequest`; the I/O shell calls
:meth:`Workflows.perform` (built once by :func:`build_workflows`) and records the
:class:`ActionResult` in an event, so replay never performs an action twice.
:mod:`agent.workflows.api_errors` and :mod:`agent.workflows.extract` are pure and can be
used by the decider directly.
"""

from agent.workflows.accounts import AccountDirectory, InMemoryAccountDirectory, Tenant, User
from agent.workflows.actions import ActionRequest, ActionResult, Workflows
from agent.workflows.api_errors import ApiDiagnosis, diagnose
from agent.workflows.billing import BillingPort, InMemoryBilling, Invoice, RefundResult
from agent.workflows.extract import Money, amounts, emails, invoice_numbers, wants_last_invoice
from agent.workflows.fixtures import Accounts, accounts_from_mapping, load_accounts
from agent.workflows.mailer import FileMailer, Mailer, OutgoingEmail, SmtpMailer
from agent.workflows.password import PasswordResetResult
from agent.workflows.tokens import InMemoryTokenStore, SQLiteTokenStore, TokenStore
from agent.workflows.wiring import build_workflows

__all__ = [
    "AccountDirectory",
    "Accounts",
    "ActionRequest",
    "ActionResult",
    "ApiDiagnosis",
    "BillingPort",
    "FileMailer",
    "InMemoryAccountDirectory",
    "InMemoryBilling",
    "InMemoryTokenStore",
    "Invoice",
    "Mailer",
    "Money",
    "OutgoingEmail",
    "PasswordResetResult",
    "RefundResult",
    "SQLiteTokenStore",
    "SmtpMailer",
    "Tenant",
    "TokenStore",
    "User",
    "Workflows",
    "accounts_from_mapping",
    "amounts",
    "build_workflows",
    "diagnose",
    "emails",
    "invoice_numbers",
    "load_accounts",
    "wants_last_invoice",
]
