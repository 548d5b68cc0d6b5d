"""Pure helpers the decider uses to pull action parameters out of customer text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_INVOICE = re.compile(r"\binv(?:oice)?[\s#:\-]*(\d{4})[\s\-/]?(\d{4})\b", re.IGNORECASE)
_LAST_INVOICE = re.compile(
    r"\b(?:last|latest|most recent|newest|recent|current|this month'?s)\s+"
    r"(?:\w+\s+)?(?:invoice|bill)",
    re.IGNORECASE,
)
_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}
_WORDS = {
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "bucks": "USD",
    "gbp": "GBP",
    "pounds": "GBP",
}
_NUMBER = r"\d{1,3}(?:[.,\s]\d{3})*(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_CODE = r"eur|euros?|usd|dollars?|bucks|gbp|pounds"
_AMOUNT = re.compile(
    rf"(?P<sym>[€$£])\s?(?P<n1>{_NUMBER})"
    rf"|(?P<pre>\b(?:{_CODE}))\s?(?P<n2>{_NUMBER})\b"
    rf"|(?P<n3>{_NUMBER})\s?(?:(?P<post>(?:{_CODE})\b)|(?P<sym2>[€$£]))",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def to_dict(self) -> dict[str, Any]:
        return {"amount": format(self.amount, "f"), "currency": self.currency}


def emails(text: str) -> list[str]:
    """Distinct addresses in order of appearance, lower-cased."""
    seen: dict[str, None] = {}
    for match in _EMAIL.finditer(text):
        seen.setdefault(match.group(0).rstrip(".").lower(), None)
    return list(seen)


def invoice_numbers(text: str) -> list[str]:
    """Distinct invoice numbers as ``INV-YYYY-NNNN`` ("inv 2026-0101" is read too)."""
    seen: dict[str, None] = {}
    for match in _INVOICE.finditer(text):
        seen.setdefault(f"INV-{match.group(1)}-{match.group(2)}", None)
    return list(seen)


def wants_last_invoice(text: str) -> bool:
    return _LAST_INVOICE.search(text) is not None


def parse_number(raw: str) -> Decimal | None:
    """``1,200`` and ``1.200`` are thousands; ``49,00`` and ``49.5`` are decimals."""
    s = raw.replace(" ", "")
    if "," in s and "." in s:
        decimal_sep = "," if s.rfind(",") > s.rfind(".") else "."
        thousands = "." if decimal_sep == "," else ","
        s = s.replace(thousands, "").replace(decimal_sep, ".")
    elif "," in s or "." in s:
        sep = "," if "," in s else "."
        head, _, tail = s.rpartition(sep)
        s = s.replace(sep, "") if len(tail) == 3 else f"{head.replace(sep, '')}.{tail}"
    try:
        return Decimal(s)
    except InvalidOperation:
        return None


def amounts(text: str) -> list[Money]:
    """Amounts written with a currency: ``49 EUR``, ``€49``, ``$1,200``, ``99.50 dollars``."""
    found = []
    for m in _AMOUNT.finditer(text):
        raw = m.group("n1") or m.group("n2") or m.group("n3")
        marker = m.group("sym") or m.group("pre") or m.group("post") or m.group("sym2") or ""
        currency = _SYMBOLS.get(marker) or _WORDS.get(marker.lower())
        value = parse_number(raw)
        if currency and value is not None:
            found.append(Money(value, currency))
    return found


def amounts_in_context(text: str, width: int = 15) -> list[tuple[Money, str]]:
    """Each amount with the ``width`` characters around it (before and after)."""
    found: list[tuple[Money, str]] = []
    for m in _AMOUNT.finditer(text):
        around = text[max(0, m.start() - width) : m.start()] + " " + text[m.end() : m.end() + width]
        found.extend((money, around) for money in amounts(m.group(0)))
    return found


_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "a couple of": 2, "a few": 3, "um": 1, "uma": 1, "dois": 2, "duas": 2, "três": 3,
    "quatro": 4, "cinco": 5, "dos": 2, "tres": 3, "cuatro": 4, "zwei": 2, "drei": 3,
    "vier": 4, "fünf": 5, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5,
}  # fmt: skip
_UNIT_DAYS = {"day": 1, "dia": 1, "día": 1, "tag": 1, "jour": 1, "week": 7, "semana": 7,
              "woche": 7, "semaine": 7, "month": 30, "mes": 30, "mês": 30, "monat": 30,
              "mois": 30}  # fmt: skip
_CHARGE_CONTEXT = re.compile(
    r"\b(charg\w*|bill(ed|ing)?|debit\w*|paid|cobra\w*|abgebucht|belastet|prélev\w*|cargad\w*"
    r"|invoice|INV-)",
    re.IGNORECASE,
)
_AGO = re.compile(
    r"\b(\d+|a couple of|a few|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven"
    r"|twelve|um|uma|dois|duas|três|quatro|cinco|dos|tres|cuatro|zwei|drei|vier|fünf|deux"
    r"|trois|quatre|cinq)\s+(day|dia|día|tag|jour|week|semana|woche|semaine|month|mes|mês"
    r"|monat|mois)(e?s|en|e)?\s+(ago|back|earlier)\b"
    r"|\b(?:há|hace|vor|il y a)\s+(\S+(?:\s\S+)?)\s+(dias?|días?|tagen?|jours?|semanas?"
    r"|wochen?|semaines?|meses|mês|monaten?|mois)\b",
    re.IGNORECASE,
)
_RELATIVE_DAYS = (
    (re.compile(r"\b(today|this morning|earlier today|heute|hoy|hoje|aujourd'hui)\b", re.I), 0),
    (re.compile(r"\b(yesterday|gestern|ayer|ontem|hier)\b", re.I), 1),
    (
        re.compile(r"\blast week\b|\bletzte woche\b|\bla semana pasada\b|\bsemana passada\b", re.I),
        7,
    ),
    (re.compile(r"\blast month\b|\bletzten monat\b|\bel mes pasado\b|\bmês passado\b", re.I), 30),
)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ON_WEEKDAY = re.compile(r"\b(?:on|last)\s+(" + "|".join(_WEEKDAYS) + r")\b", re.IGNORECASE)


def charged_on(turns: tuple[str, ...] | list[str], occurred_at: str) -> str | None:
    """The date (ISO ``YYYY-MM-DD``) the customer says the charge happened, as of the
    message time ``occurred_at`` (ISO 8601); the newest statement wins, ``None`` if none.

    Reads "5 days ago", "two months ago", "yesterday", "last week", "on Tuesday" (the
    latest such weekday before today) and the same in a few other languages ("há quatro
    dias", "vor 3 Tagen"), in sentences about a charge or an invoice.
    """
    try:
        now = datetime.fromisoformat(occurred_at)
    except ValueError:
        return None
    for text in reversed(turns):
        if not _CHARGE_CONTEXT.search(text):
            continue
        days = _days_ago(text, now)
        if days is not None:
            return (now - timedelta(days=days)).date().isoformat()
    return None


def _days_ago(text: str, now: datetime) -> int | None:
    m = _AGO.search(text)
    if m is not None:
        if m.group(1):
            raw, unit = m.group(1).lower(), m.group(2).lower()
        else:
            raw, unit = m.group(5).lower().split()[0], m.group(6).lower()
        count = int(raw) if raw.isdigit() else _NUMBER_WORDS.get(raw)
        per = next((d for u, d in _UNIT_DAYS.items() if unit.startswith(u)), None)
        if count is not None and per is not None:
            return count * per
    for rx, days in _RELATIVE_DAYS:
        if rx.search(text):
            return days
    w = _ON_WEEKDAY.search(text)
    if w is not None:
        back = (now.weekday() - _WEEKDAYS.index(w.group(1).lower())) % 7
        return back or 7
    return None
