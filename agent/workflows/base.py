"""Small shared pieces: the injectable clock and JSON-ready conversion for results.

Every workflow result is a frozen dataclass whose ``to_dict()`` gives plain JSON values
(datetimes as ISO 8601 strings, decimals as strings) so the lead can record it in an
event and replay never performs the action again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

#: Returns the current time, timezone-aware (UTC). Tests pass a fixed or stepping clock.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def jsonable(value: Any) -> Any:
    """``value`` with datetimes, dates, decimals, tuples and dataclasses made JSON-ready."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class WorkflowError(Exception):
    """An adapter failed (SMTP down, store unavailable); ``reason`` is short and recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
