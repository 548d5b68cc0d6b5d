"""Pure reading of "when was the token issued" statements into an age in seconds.

Handles "I got the token 2 hours ago", "generated yesterday", "half an hour old",
"issued at 09:00", "at 9:30am UTC", "issued 2026-09-12T09:00:00Z", "just generated it".
Only sentences that talk about a token (or use an issuing verb) count; the last such
statement wins, so a correction ("I refreshed it 5 minutes ago") overrides earlier ones.
Clock times without a zone are read as UTC; a time later than now means yesterday.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_CONTEXT = re.compile(
    r"\b(?:tokens?|jwt|bearer|access[_ ]token|generated|issued|minted|obtained|created|"
    r"requested|fetched|refreshed)\b",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD_NUMBERS = {
    "a": 1.0, "an": 1.0, "one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0,
    "six": 6.0, "seven": 7.0, "eight": 8.0, "nine": 9.0, "ten": 10.0, "twelve": 12.0,
    "a few": 2.0, "a couple of": 2.0, "a couple": 2.0, "several": 3.0,
    "half an": 0.5, "half a": 0.5,
}  # fmt: skip
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE = re.compile(
    r"\b(\d+(?:\.\d+)?|half an?|a couple(?: of)?|a few|several|an?|one|two|three|four|five|"
    r"six|seven|eight|nine|ten|twelve)\s*(seconds?|secs?|minutes?|mins?|hours?|hrs?|h|days?|"
    r"weeks?)\s+(?:ago|old|back|earlier)\b",
    re.IGNORECASE,
)
_FRESH = re.compile(
    r"\b(?:just now|just (?:generated|created|got|fetched|issued|requested|refreshed|minted)|"
    r"brand[- ]new|freshly|seconds ago|a minute ago|moments? ago)\b",
    re.IGNORECASE,
)
_DAYS = {
    "yesterday": 86400,
    "last night": 8 * 3600,
    "the day before": 2 * 86400,
    "last week": 7 * 86400,
    "days ago": 2 * 86400,
}
_ISO = re.compile(r"\b(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(Z|[+-]\d{2}:?\d{2})?")
_CLOCK = re.compile(
    r"\b(?:at|around|about|@)\s*(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?\s*(?:utc|gmt|z)?\b",
    re.IGNORECASE,
)


def _relative(sentence: str) -> tuple[int, str] | None:
    if _FRESH.search(sentence):
        return 0, "just issued"
    m = _RELATIVE.search(sentence)
    if m is None:
        return None
    raw, unit = m.group(1).lower(), m.group(2).lower()
    count = float(raw) if raw[0].isdigit() else _WORD_NUMBERS[raw]
    seconds = _UNITS["m" if unit.startswith("mi") else unit[0]]
    return int(count * seconds), m.group(0)


def _clock(sentence: str, now: datetime) -> tuple[int, str] | None:
    iso = _ISO.search(sentence)
    if iso is not None:
        zone = iso.group(3) or "+00:00"
        stamp = datetime.fromisoformat(
            f"{iso.group(1)}T{iso.group(2)}{zone.replace('Z', '+00:00')}"
        )
        return max(0, int((now - stamp).total_seconds())), iso.group(0)
    for m in _CLOCK.finditer(sentence):
        hour, minute, half = int(m.group(1)), m.group(2), (m.group(3) or "").lower()
        if minute is None and not half:
            continue  # "at 5" alone is too ambiguous
        if half.startswith("p") and hour < 12:
            hour += 12
        elif half.startswith("a") and hour == 12:
            hour = 0
        if hour > 23 or int(minute or 0) > 59:
            continue
        stamp = now.replace(hour=hour, minute=int(minute or 0), second=0, microsecond=0)
        if "yesterday" in sentence.lower() or stamp > now:
            stamp -= timedelta(days=1)
        return int((now - stamp).total_seconds()), m.group(0).strip()
    return None


def _days(sentence: str, now: datetime) -> tuple[int, str] | None:
    lowered = sentence.lower()
    for phrase, seconds in _DAYS.items():
        if phrase in lowered:
            return seconds, phrase
    if "this morning" in lowered and now.hour >= 13:
        return (now.hour - 12) * 3600 + now.minute * 60, "this morning"
    return None


def token_age(text: str, now: datetime) -> tuple[int | None, str | None]:
    """(age in seconds, the phrase it came from) of the last token-issue statement."""
    age: tuple[int, str] | None = None
    for sentence in _SPLIT.split(text):
        if not _CONTEXT.search(sentence):
            continue
        found = _clock(sentence, now) or _relative(sentence) or _days(sentence, now)
        if found is not None:
            age = found
    return (age[0], age[1]) if age else (None, None)
