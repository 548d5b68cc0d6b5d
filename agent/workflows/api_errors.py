"""API troubleshooting (pure): from a conversation's turns to a diagnosis with the fix.

Facts from the KB ("Fix 401 invalid_token errors", "API rate limits and handling HTTP
429", "Validation errors"): access tokens last 3600 s, refresh tokens 30 days and rotate,
client credentials has no refresh token; limits per tenant per rolling minute by plan; a
400 ``validation_failed`` body names the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from agent.workflows.api_evidence import ApiEvidence, gather
from agent.workflows.base import as_utc, jsonable

ACCESS_TOKEN_LIFETIME_S = 3600
TOKEN_URL = "https://auth.casestream.io/oauth/token"

DiagnosisOutcome = Literal[
    "token_expiry_identified",
    "token_invalid_identified",
    "rate_limit_explained",
    "malformed_field_identified",
    "permission_denied_identified",
    "server_error_reported",
    "needs_more_info",
]

FIX_REFRESH = (
    f"Exchange your refresh token for a new access token: POST {TOKEN_URL} with "
    "grant_type=refresh_token&refresh_token=<refresh_token>&client_id=...&client_secret=... "
    "Save both the new access token and the new refresh token (refresh tokens rotate and "
    "last 30 days)."
)
FIX_CLIENT_CREDENTIALS = (
    f"Request a new access token: POST {TOKEN_URL} with grant_type=client_credentials "
    "(this flow has no refresh token)."
)
PREVENT_EXPIRY = (
    "Access tokens are valid for 1 hour (3600 s): store expires_in with the token and refresh "
    "about 5 minutes before it expires; on a 401 invalid_token refresh once and retry."
)
ASK_STATUS = (
    "Which HTTP status code does the API return? Please paste the full response body and "
    "headers (for example the output of curl -v)."
)
ASK_TOKEN_AGE = (
    "When did you obtain the access token you are sending (or paste its exp claim), and which "
    "grant type do you use: authorization code with a refresh token, or client credentials?"
)
ASK_BODY_400 = "Please paste the response body of the 400: it names the field that was rejected."
_INVALID_CAUSES = {
    "malformed": (
        "access_token_malformed",
        "Send the full token as `Authorization: Bearer <token>`.",
    ),
    "revoked": ("access_token_revoked", "The token was revoked: authorise the app again."),
}


@dataclass(frozen=True, slots=True)
class ApiDiagnosis:
    """``fix`` is guidance for the customer, ``question`` what to ask when more is needed;
    ``evidence`` lists what the diagnosis rests on."""

    outcome: DiagnosisOutcome
    cause: str
    http_status: int | None = None
    fix: str = ""
    question: str = ""
    details: dict[str, str] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dict(jsonable(self))


@dataclass(frozen=True, slots=True)
class _Builder:
    status: int | None
    base: dict[str, str]
    notes: list[str]

    def __call__(
        self,
        outcome: DiagnosisOutcome,
        cause: str,
        *,
        fix: str = "",
        question: str = "",
        details: dict[str, str] | None = None,
    ) -> ApiDiagnosis:
        merged = {**self.base, **(details or {})}
        return ApiDiagnosis(outcome, cause, self.status, fix, question, merged, tuple(self.notes))


def _expiry_fix(grant: str | None) -> str:
    if grant == "client_credentials":
        steps = FIX_CLIENT_CREDENTIALS
    elif grant == "authorization_code":
        steps = FIX_REFRESH
    else:
        steps = (
            f"Authorization code apps: {FIX_REFRESH} "
            f"Client credentials apps: {FIX_CLIENT_CREDENTIALS}"
        )
    return f"{steps} Then retry the request once. {PREVENT_EXPIRY}"


def _base_evidence(ev: ApiEvidence) -> list[str]:
    notes = []
    if ev.status is not None:
        notes.append(f"http status {ev.status}")
    if ev.error:
        notes.append(
            f"error {ev.error}" + (f": {ev.error_description}" if ev.error_description else "")
        )
    if ev.token_age_s is not None:
        notes.append(f"token age >= {ev.token_age_s} s ({ev.token_age_source})")
    if ev.grant_type:
        notes.append(f"grant type {ev.grant_type}")
    return notes


def _expired(ev: ApiEvidence, now: datetime) -> str | None:
    """Why the access token is known to be expired, else None."""
    description = (ev.error_description or "").lower()
    if ev.error == "invalid_token" and "expired" in description:
        return "error_description says the access token expired"
    if ev.status not in (None, 401):
        return None
    if ev.token_expires_at is not None and as_utc(ev.token_expires_at) <= now:
        return f"jwt exp {as_utc(ev.token_expires_at).isoformat()} has passed"
    if ev.status != 401:
        return None
    if ev.token_age_s is not None and ev.token_age_s > ACCESS_TOKEN_LIFETIME_S:
        return f"token is {ev.token_age_s} s old, longer than the 3600 s lifetime"
    if ev.fails_after_an_hour and ev.token_age_s is None:
        return "requests start failing about an hour after the token is issued"
    return None


def diagnose(
    turns: Sequence[str],
    now: datetime,
    *,
    plan: str | None = None,
    limit_per_min: int | None = None,
) -> ApiDiagnosis:
    """Diagnose the API problem described in ``turns`` (oldest first) as of ``now``."""
    now = as_utc(now)
    ev = gather(list(turns), now)
    notes = _base_evidence(ev)
    status = ev.status
    base: dict[str, str] = {"http_status": "" if status is None else str(status)}
    if ev.grant_type:
        base["grant_type"] = ev.grant_type
    if ev.token_age_s is not None:
        base["token_age_s"] = str(ev.token_age_s)
    if ev.request_id:
        base["request_id"] = ev.request_id

    result = _Builder(status, base, notes)

    why = _expired(ev, now)
    if why is not None:
        notes.append(why)
        return result(
            "token_expiry_identified", "access_token_expired", fix=_expiry_fix(ev.grant_type)
        )
    said_limited = ev.rate_limited and status in (None, 429)
    if status == 429 or ev.error == "rate_limit_exceeded" or said_limited:
        return _rate_limit(ev, plan, limit_per_min, result)
    bad_request_errors = (
        "validation_failed",
        "invalid_grant",
        "invalid_scope",
        "invalid_parameter",
    )
    if ev.fields or ev.error in bad_request_errors or status in (400, 422):
        return _bad_request(ev, result)
    if status == 401 or ev.error in ("invalid_token", "missing_token", "invalid_client"):
        return _unauthorized(ev, result)
    if status == 403 or ev.error in ("forbidden", "insufficient_scope"):
        fix = (
            "The token is valid but the user's profile or the app's scopes do not allow this "
            "action; refreshing will not help. Ask an administrator to grant the permission "
            "or add the scope to the app and authorise it again."
        )
        return result("permission_denied_identified", ev.error or "forbidden", fix=fix)
    if status is not None and status >= 500:
        fix = (
            "This is an error on our side. Retry with exponential backoff; if it persists, "
            "we escalate it with the X-Request-Id and the time of the request (UTC)."
        )
        return result("server_error_reported", "server_error", fix=fix)
    return result("needs_more_info", "no_status", question=ASK_STATUS)


def _rate_limit(
    ev: ApiEvidence, plan: str | None, limit: int | None, result: _Builder
) -> ApiDiagnosis:
    limit = limit or ev.ratelimit_limit
    details = {"plan": plan or "", "limit_per_min": "" if limit is None else str(limit)}
    if ev.retry_after_s is not None:
        details["retry_after_s"] = str(ev.retry_after_s)
    if ev.ratelimit_remaining is not None:
        details["remaining"] = str(ev.ratelimit_remaining)
    allowance = (
        f"Your {plan} plan allows {limit:,} requests per minute per tenant (rolling 60 s window)."
        if plan and limit
        else "Limits are per tenant per rolling 60 s: Starter 100, Professional 1,000, "
        "Enterprise 5,000 requests per minute."
    )
    wait = (
        f"Wait the Retry-After value ({ev.retry_after_s} s) before retrying"
        if ev.retry_after_s is not None
        else "Wait the number of seconds in the Retry-After header before retrying"
    )
    fix = (
        f"{allowance} {wait}, then back off exponentially with jitter. Watch "
        "X-RateLimit-Remaining and slow down as it approaches 0, and use bulk endpoints "
        "(up to 200 records per request) instead of one call per record."
    )
    return result("rate_limit_explained", "rate_limit_exceeded", fix=fix, details=details)


def _bad_request(ev: ApiEvidence, result: _Builder) -> ApiDiagnosis:
    if ev.error == "invalid_grant":
        fix = (
            "The refresh token is invalid, expired (30 days), already used (they rotate) or "
            "revoked: the user must authorise the app again."
        )
        return result("token_invalid_identified", "refresh_token_invalid", fix=fix)
    if ev.error == "invalid_scope":
        fix = "Request only scopes that are enabled for the app, or enable the scope first."
        return result(
            "malformed_field_identified", "invalid_scope", fix=fix, details={"field": "scope"}
        )
    if not ev.fields:
        return result("needs_more_info", "field_unknown", question=ASK_BODY_400)
    first = ev.fields[0]
    named = "; ".join(
        f"`{f.field}`: {f.message}" if f.message else f"`{f.field}`" for f in ev.fields
    )
    fix = (
        f"The request was rejected because of {named}. Correct the field and send it again "
        "(dates are ISO 8601, `limit` is 1-200, bulk requests take up to 200 records)."
    )
    details = {"field": first.field, "field_message": first.message}
    if len(ev.fields) > 1:
        details["fields"] = ",".join(f.field for f in ev.fields)
    return result("malformed_field_identified", "validation_failed", fix=fix, details=details)


def _unauthorized(ev: ApiEvidence, result: _Builder) -> ApiDiagnosis:
    description = (ev.error_description or "").lower()
    for word, (cause, fix) in _INVALID_CAUSES.items():
        if word in description:
            return result("token_invalid_identified", cause, fix=fix)
    if ev.error == "missing_token":
        fix = "Add the `Authorization: Bearer <token>` header and check no proxy strips it."
        return result("token_invalid_identified", "missing_token", fix=fix)
    if ev.error == "invalid_client":
        fix = "Check the client_id and client_secret of the app (Settings > Developer)."
        return result("token_invalid_identified", "invalid_client", fix=fix)
    if ev.token_age_s is not None:
        question = (
            f"The token is only about {ev.token_age_s // 60} minutes old, so it has not expired. "
            "Please paste the full 401 response body and check that you send "
            "`Authorization: Bearer <token>` with the complete token."
        )
        return result("needs_more_info", "token_not_expired", question=question)
    return result("needs_more_info", "token_age_unknown", question=ASK_TOKEN_AGE)
