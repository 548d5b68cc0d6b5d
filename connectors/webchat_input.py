"""Edge input handling of the web-chat connector: raw bodies, JSON, message text.

The routes read their bodies themselves (instead of letting FastAPI parse them) so that
each failure has its own code: ``payload_too_large`` (413), ``invalid_encoding`` and
``invalid_json`` (400), ``validation_error`` and ``empty_message`` (422).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from connectors.webchat_models import MAX_BODY_BYTES, ApiError

M = TypeVar("M", bound=BaseModel)

FLAG_TRUNCATED = "truncated"
FLAG_CONTROL_CHARS = "control_chars_removed"

# C0 and C1 control characters and DEL, except tab (\x09) and newline (\x0a); carriage
# returns are turned into newlines before this runs.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes without buffering it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> NoReturn:
    raise ApiError(413, "payload_too_large", f"request body is larger than {limit} bytes")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes, *, allow_empty: bool = False) -> Any:
    """Decode UTF-8 (400 ``invalid_encoding``) and parse JSON (400 ``invalid_json``)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, "invalid_encoding", f"request body is not valid UTF-8 (byte {exc.start})"
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "invalid_json", "request body is empty; a JSON object is required")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None


def validate(model: type[M], data: Any) -> M:
    """``data`` as ``model``; errors become 422 ``validation_error`` (or 400 for bad Unicode)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "string_unicode" for e in errors):
            raise ApiError(
                400, "invalid_encoding", "a string contains escapes that are not valid Unicode"
            ) from None
        raise ApiError(422, "validation_error", describe_errors(errors)) from None


def describe_errors(errors: Any) -> str:
    """One line per pydantic/FastAPI error: ``field.path: message``."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "request is invalid"


@dataclass(frozen=True, slots=True)
class CleanText:
    """Message text as accepted at the edge, with what was done to it."""

    text: str
    original_length: int
    truncated: bool
    flags: tuple[str, ...]


class EmptyMessage(ValueError):
    """The text has no visible content."""


def clean_text(raw: str, limit: int) -> CleanText:
    """Normalise line endings, strip control characters, truncate to ``limit`` characters.

    ``original_length`` is the length of ``raw`` as sent. Raises :class:`EmptyMessage`
    when nothing but whitespace is left.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    flags: list[str] = []
    stripped = _CONTROL.sub("", text)
    if len(stripped) != len(text):
        flags.append(FLAG_CONTROL_CHARS)
    if not stripped.strip():
        raise EmptyMessage("message text is empty or only whitespace")
    truncated = len(stripped) > limit
    if truncated:
        stripped = stripped[:limit]
        flags.append(FLAG_TRUNCATED)
    return CleanText(stripped, len(raw), truncated, tuple(flags))
