"""Pure extraction of evidence from pasted API errors and what the customer says.

Reads curl -v output, Python ``requests`` tracebacks, JS ``fetch``/axios errors, Postman
output and plain sentences: HTTP status codes, JSON (or Python/JS literal) error bodies,
rate-limit headers, the OAuth grant type, and how old the access token is (relative
statements, clock times, or the ``iat``/``exp`` of a pasted JWT, decoded unverified).
Clock times without a zone are read as UTC.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.workflows.base import as_utc
from agent.workflows.time_phrases import token_age

#: Only the last this many characters of a conversation are read.
MAX_CHARS = 20_000
#: Bounds on the body parse: candidate objects tried, and the size of one object.
MAX_OBJECTS, MAX_OBJECT_CHARS = 64, 4_000
KNOWN_STATUSES = {400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 500, 502, 503, 504}
_STATUS_PATTERNS = [
    r"HTTP/\d(?:\.\d)?\s+(\d{3})\b",
    r"\b(\d{3})\s+(?:Client|Server)\s+Error\b",
    r"<Response \[(\d{3})\]>",
    r"status(?:[ _-]?code)?[\"']?\s*(?:===?|:|=|is)\s*[\"']?(\d{3})\b",
    r"status code (\d{3})\b",
    r"\b(\d{3})\s+\(?(?:Unauthorized|Forbidden|Too Many Requests|Bad Request|Not Found|"
    r"Unprocessable Entity|Internal Server Error|Bad Gateway|Service Unavailable|"
    r"Gateway Timeout|Conflict|Method Not Allowed)\b",
    r"\b(?:an?|the|get|gets|getting|got|returns?|returning|returned|receive[sd]?|receiving|"
    r"throws?|throwing|error|code|http|with|keep|still)\s+(?:an?\s+|http\s+)?([45]\d\d)(?:s|'s)?\b",
    r"\b([45]\d\d)(?:s|'s)?\s+(?:error|errors|response|responses|status|again)\b",
    r"\b([45]\d\d)(?:s|'s)?\s+(?:invalid_\w+|unauthori[sz]ed|forbidden|validation_failed)\b",
    r"\b([45]\d\d)(?:s|'s)\b",  # "429s when the batch job runs": a plural is a status
]
_STATUS_RE = [re.compile(p, re.IGNORECASE) for p in _STATUS_PATTERNS]
_KV_RE = re.compile(
    r"(?<![\w-])[\"']?(error|error_description|field|message)[\"']?\s*[:=]\s*([\"'])(.*?)\2",
    re.IGNORECASE,
)
_HEADER_RE = {
    name: re.compile(rf"{name}[\"']?\s*[:=]\s*[\"']?([\w.-]+)", re.IGNORECASE)
    for name in ("retry-after", "x-ratelimit-remaining", "x-ratelimit-limit", "x-request-id")
}
_JWT_RE = re.compile(r"\beyJ[\w-]+\.(eyJ[\w-]+)\.[\w-]*")
_CLAIM_RE = re.compile(r"[\"'](iat|exp)[\"']\s*:\s*(\d{9,11})")
#: Error codes written in a sentence rather than in a pasted body.
_PROSE_ERROR = re.compile(
    r"\b(invalid_token|invalid_grant|invalid_client|invalid_scope|invalid_request"
    r"|invalid_parameter|missing_token|validation_failed|rate_limit_exceeded"
    r"|insufficient_scope)\b"
)
#: "field close_date", "on field limit", "the birthday field" (a field named in prose).
_PROSE_FIELD = re.compile(
    r"\bfield[\s:=]+[`'\"]?([a-z_][\w.]*)[`'\"]?|\bthe [`'\"]?([a-z_][\w.]*)[`'\"]? field\b",
    re.IGNORECASE,
)
_PROSE_MESSAGE = re.compile(r"\bmessage[\s:=]+[`'\"]?([^\n\"'`.?!]{3,120})", re.IGNORECASE)
_NOT_FIELDS = frozenset({"is", "was", "that", "this", "which", "the", "a", "an", "it", "name"})
#: "we store the token since two days", "(it runs ~3 hours on the same token)".
_HELD_FOR = re.compile(
    r"\b(?:since|for|runs?|running|used|using|kept|keep)\s+(?:about\s+|~\s?)?"
    r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve)\s*"
    r"(hours?|hrs?|days?|weeks?)\b",
    re.IGNORECASE,
)
_COUNTS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "twelve": 12,
}  # fmt: skip
_RATE_LIMITED = re.compile(
    r"\brate[- ]?limit(ed|ing)?\b|\btoo many requests\b|\bthrottl(ed|ing)\b", re.IGNORECASE
)
_HOUR_SYMPTOM = re.compile(
    r"\b(?:after|for|every)\s+(?:about\s+|around\s+|roughly\s+|exactly\s+|~\s?)?"
    r"(?:an|one|1|60)\s*(?:hour|hr|h|minutes|mins?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ApiEvidence:
    """Everything found; ``token_age_s`` is a lower bound, ``token_age_source`` says why."""

    statuses: tuple[int, ...] = ()
    error: str | None = None
    error_description: str | None = None
    fields: tuple[FieldError, ...] = ()
    retry_after_s: int | None = None
    ratelimit_remaining: int | None = None
    ratelimit_limit: int | None = None
    request_id: str | None = None
    grant_type: str | None = None
    token_age_s: int | None = None
    token_age_source: str | None = None
    token_expires_at: datetime | None = None
    fails_after_an_hour: bool = False
    #: The customer says they are rate limited ("rate limited", "too many requests").
    rate_limited: bool = False

    @property
    def status(self) -> int | None:
        """The latest error status mentioned (>= 400), else the latest status."""
        errors = [s for s in self.statuses if s >= 400]
        return errors[-1] if errors else (self.statuses[-1] if self.statuses else None)


def statuses(text: str) -> tuple[int, ...]:
    found: list[tuple[int, int]] = []
    for regex in _STATUS_RE:
        for m in regex.finditer(text):
            code = int(m.group(1))
            if code in KNOWN_STATUSES or regex is _STATUS_RE[0]:
                found.append((m.start(1), code))
    return tuple(code for _, code in sorted(set(found)))


def _balanced(text: str, start: int) -> str | None:
    depth, quote, i, end = 0, "", start, min(len(text), start + MAX_OBJECT_CHARS)
    while i < end:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1
    return None


def _objects(text: str) -> Iterator[dict[str, Any]]:
    """Every dict in JSON or Python-literal bodies, nested ones included."""
    pos, attempts = text.find("{"), 0
    while pos != -1 and attempts < MAX_OBJECTS:
        attempts += 1
        chunk = _balanced(text, pos)
        value: Any = None
        if chunk is not None:
            try:
                value = json.loads(chunk)
            except ValueError:
                try:
                    value = ast.literal_eval(chunk)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    value = None
        if value is None:
            pos = text.find("{", pos + 1)
            continue
        yield from _walk(value)
        pos = text.find("{", pos + len(chunk or "{"))


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _body(text: str) -> tuple[str | None, str | None, list[FieldError]]:
    error: str | None = None
    description: str | None = None
    fields: list[FieldError] = []
    for obj in _objects(text):
        if error is None and isinstance(obj.get("error"), str):
            error = obj["error"]
            desc = obj.get("error_description") or obj.get("message")
            description = str(desc) if desc else None
        if isinstance(obj.get("field"), str):
            fields.append(FieldError(obj["field"], str(obj.get("message") or "")))
    pending: dict[str, str] = {}
    for m in _KV_RE.finditer(text):
        key, val = m.group(1).lower(), m.group(3)
        if key == "error" and error is None:
            error = val
        elif key == "error_description" and description is None:
            description = val
        elif key == "field":
            pending = {"field": val}
        elif key == "message" and "field" in pending and "message" not in pending:
            pending["message"] = val
            if all(f.field != pending["field"] for f in fields):
                fields.append(FieldError(pending["field"], val))
    if pending.get("field") and all(f.field != pending["field"] for f in fields):
        fields.append(FieldError(pending["field"], pending.get("message", "")))
    return error, description, fields


def _prose(text: str, error: str | None, fields: list[FieldError]) -> str | None:
    """Add what a sentence says when no pasted body did: the error code and the field."""
    if error is None:
        m = _PROSE_ERROR.search(text)
        error = m.group(1) if m else None
    if not fields:
        for m in _PROSE_FIELD.finditer(text):
            name = m.group(1) or m.group(2)
            if name and name.lower() not in _NOT_FIELDS:
                said = _PROSE_MESSAGE.search(text, m.end())
                fields.append(FieldError(name, said.group(1).strip() if said else ""))
                break
    return error


def _held_for(text: str) -> int | None:
    """How long the customer says the same token has been in use, in seconds."""
    age = None
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        if not re.search(r"\btokens?\b", sentence, re.IGNORECASE):
            continue
        m = _HELD_FOR.search(sentence)
        if m is not None:
            raw, unit = m.group(1).lower(), m.group(2).lower()
            count = int(raw) if raw.isdigit() else _COUNTS[raw]
            per = {"h": 3600, "d": 86400, "w": 604800}[unit[0]]
            age = count * per
    return age


def _header(text: str, name: str) -> str | None:
    matches = _HEADER_RE[name].findall(text)
    return matches[-1] if matches else None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def grant_type(text: str) -> str | None:
    lowered = text.lower()
    m = re.search(r"grant_type[\"']?\s*[=:]\s*[\"']?(\w+)", lowered)
    explicit = m.group(1) if m else ""
    if "client_credentials" in explicit or re.search(r"client[\s_-]credentials?", lowered):
        return "client_credentials"
    if explicit in ("authorization_code", "refresh_token") or re.search(
        r"authori[sz]ation[\s_-]code|auth code|pkce|refresh[\s_-]token", lowered
    ):
        return "authorization_code"
    return None


def jwt_claims(text: str) -> dict[str, int]:
    """``iat``/``exp`` from a pasted JWT (payload decoded, signature not verified) or from a
    pasted decoded payload."""
    claims: dict[str, int] = {}
    for m in _JWT_RE.finditer(text):
        payload = m.group(1)
        try:
            decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, binascii.Error):
            continue
        if isinstance(decoded, dict):
            claims.update({k: int(decoded[k]) for k in ("iat", "exp") if k in decoded})
    for m in _CLAIM_RE.finditer(text):
        claims.setdefault(m.group(1), int(m.group(2)))
    return claims


def gather(turns: list[str] | tuple[str, ...], now: datetime) -> ApiEvidence:
    """All evidence in the conversation's turns (oldest first) as seen at ``now``."""
    text = "\n".join(turns)[-MAX_CHARS:]  # the newest part; bounds the parse time
    now = as_utc(now)
    error, description, fields = _body(text)
    error = _prose(text, error, fields)
    claims = jwt_claims(text)
    age, source = token_age(text, now)
    if age is None:
        held = _held_for(text)
        if held is not None:
            age, source = held, "token in use for that long"
    expires_at = None
    if "exp" in claims:
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
    if "iat" in claims:
        age, source = (
            max(0, int((now - datetime.fromtimestamp(claims["iat"], UTC)).total_seconds())),
            "jwt iat",
        )
    elif expires_at is not None and age is None:
        issued = expires_at - timedelta(seconds=3600)
        age, source = max(0, int((now - issued).total_seconds())), "jwt exp - 3600 s"
    return ApiEvidence(
        statuses=statuses(text),
        error=error,
        error_description=description,
        fields=tuple(fields),
        retry_after_s=_int(_header(text, "retry-after")),
        ratelimit_remaining=_int(_header(text, "x-ratelimit-remaining")),
        ratelimit_limit=_int(_header(text, "x-ratelimit-limit")),
        request_id=_header(text, "x-request-id"),
        grant_type=grant_type(text),
        token_age_s=age,
        token_age_source=source,
        token_expires_at=expires_at,
        fails_after_an_hour=_HOUR_SYMPTOM.search(text) is not None,
        rate_limited=_RATE_LIMITED.search(text) is not None,
    )
