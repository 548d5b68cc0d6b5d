"""The action interface between the decider and the workflows.

The pure decider emits an :class:`ActionRequest` (plain data); the I/O shell calls
:meth:`Workflows.perform` and records the :class:`ActionResult` in an event, so replay
reads the result instead of performing the action again. ``perform`` never raises: an
adapter failure (SMTP down, store error) comes back as ``status="error"``.

Parameters (all strings):

- ``password_reset``: ``email``.
- ``api_diagnosis``: ``text`` (the conversation's turns joined by newlines), optional
  ``now`` (ISO 8601; the time of the last message, else the clock).
- ``invoice_lookup``: ``invoice`` (``INV-YYYY-NNNN``; missing or ``last`` = latest).
- ``refund``: ``invoice`` (as above), optional ``amount`` (decimal, default the whole
  invoice), ``currency`` and ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from agent.workflows.accounts import AccountDirectory
from agent.workflows.api_errors import diagnose
from agent.workflows.base import Clock, WorkflowError, as_utc, jsonable, utc_now
from agent.workflows.billing import BillingWorkflow
from agent.workflows.password import PasswordResetWorkflow

ActionKind = Literal["password_reset", "api_diagnosis", "invoice_lookup", "refund"]
ActionStatus = Literal["completed", "escalated", "needs_info", "not_found", "rejected", "error"]
_REFUND_STATUS: dict[str, ActionStatus] = {
    "refund_issued": "completed",
    "escalate": "escalated",
    "refund_rejected": "rejected",
    "invoice_not_found": "not_found",
}
KINDS: tuple[ActionKind, ...] = ("password_reset", "api_diagnosis", "invoice_lookup", "refund")


@dataclass(frozen=True, slots=True)
class ActionRequest:
    kind: ActionKind
    tenant_id: str
    conversation_id: str
    params: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(jsonable(self))


@dataclass(frozen=True, slots=True)
class ActionResult:
    """``outcome`` is what the decider acts on: ``password_reset_sent``,
    ``identity_not_verified``, ``password_reset_blocked``, ``token_expiry_identified``,
    ``token_invalid_identified``, ``rate_limit_explained``, ``malformed_field_identified``,
    ``permission_denied_identified``, ``needs_more_info``, ``invoice_sent``,
    ``invoice_not_found``, ``refund_issued``, ``refund_rejected``, ``escalate``, ``error``."""

    kind: str
    status: ActionStatus
    outcome: str
    details: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(jsonable(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionResult:
        return cls(
            kind=str(data["kind"]),
            status=data["status"],
            outcome=str(data["outcome"]),
            details={str(k): str(v) for k, v in (data.get("details") or {}).items()},
            reason=str(data.get("reason", "")),
        )


def _strings(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a ``to_dict()`` into ``details`` (None dropped, nested keys joined by ``_``)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            flat.update(_strings(value, f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


class Workflows:
    """Performs actions with the adapters chosen by
    :func:`~agent.workflows.wiring.build_workflows`."""

    def __init__(
        self,
        directory: AccountDirectory,
        password: PasswordResetWorkflow,
        billing: BillingWorkflow,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.directory, self.password, self.billing, self.clock = (
            directory,
            password,
            billing,
            clock,
        )

    def perform(self, request: ActionRequest) -> ActionResult:
        try:
            return self._perform(request)
        except WorkflowError as exc:
            return ActionResult(request.kind, "error", "error", reason=exc.reason)
        except Exception as exc:  # the stream must never see an adapter's exception
            return ActionResult(
                request.kind, "error", "error", reason=f"{type(exc).__name__}: {exc}"
            )

    def _perform(self, request: ActionRequest) -> ActionResult:
        handler = {
            "password_reset": self._password_reset,
            "api_diagnosis": self._api_diagnosis,
            "invoice_lookup": self._invoice_lookup,
            "refund": self._refund,
        }.get(request.kind)
        if handler is None:
            return ActionResult(request.kind, "rejected", "error", reason="unknown action kind")
        return handler(request)

    def _password_reset(self, request: ActionRequest) -> ActionResult:
        email = request.params.get("email", "").strip()
        if not email:
            return ActionResult(
                request.kind, "needs_info", "needs_more_info", {"missing": "email"}, "no email"
            )
        r = self.password.run(request.tenant_id, email)
        details = _strings(r.to_dict())
        details.pop("status", None)
        details.pop("reason", None)
        if r.status == "sent":
            return ActionResult(request.kind, "completed", "password_reset_sent", details, r.reason)
        if r.status == "identity_not_verified":
            return ActionResult(
                request.kind, "rejected", "identity_not_verified", details, r.reason
            )
        if r.status == "locked":
            return ActionResult(
                request.kind, "rejected", "password_reset_blocked", details, r.reason
            )
        return ActionResult(request.kind, "error", "error", details, r.reason)

    def _api_diagnosis(self, request: ActionRequest) -> ActionResult:
        text = request.params.get("text", "")
        raw_now = request.params.get("now")
        now = as_utc(datetime.fromisoformat(raw_now)) if raw_now else as_utc(self.clock())
        tenant = self.directory.tenant(request.tenant_id)
        d = diagnose(
            text.split("\n"),
            now,
            plan=None if tenant is None else tenant.plan,
            limit_per_min=None if tenant is None else tenant.rate_limit_per_min,
        )
        details = {**d.details, "cause": d.cause, "fix": d.fix, "question": d.question}
        details = {k: v for k, v in details.items() if v}
        if d.outcome == "needs_more_info":
            return ActionResult(request.kind, "needs_info", d.outcome, details, d.cause)
        if d.outcome == "server_error_reported":
            return ActionResult(request.kind, "escalated", "escalate", details, d.cause)
        return ActionResult(request.kind, "completed", d.outcome, details, d.cause)

    @staticmethod
    def _invoice_param(request: ActionRequest) -> str | None:
        number = request.params.get("invoice", "").strip()
        return None if number.lower() in ("", "last", "latest") else number

    def _invoice_lookup(self, request: ActionRequest) -> ActionResult:
        found = self.billing.lookup(request.tenant_id, self._invoice_param(request))
        if found.invoice is None:
            return ActionResult(request.kind, "not_found", found.outcome, {}, found.reason)
        return ActionResult(
            request.kind, "completed", found.outcome, _strings(found.invoice.to_dict())
        )

    def _refund(self, request: ActionRequest) -> ActionResult:
        raw_amount = request.params.get("amount", "").strip()
        try:
            amount = Decimal(raw_amount) if raw_amount else None
        except InvalidOperation:
            return ActionResult(
                request.kind, "needs_info", "needs_more_info", {"missing": "amount"}, "bad amount"
            )
        r = self.billing.refund(
            request.tenant_id,
            self._invoice_param(request),
            amount,
            request.params.get("currency") or None,
            request.params.get("reason") or "customer request",
            charged_on=request.params.get("charged_on") or None,
        )
        details = _strings(r.to_dict())
        details.pop("outcome", None)
        details.pop("reason", None)
        return ActionResult(request.kind, _REFUND_STATUS[r.outcome], r.outcome, details, r.reason)
