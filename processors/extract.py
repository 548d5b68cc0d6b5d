"""Pure helpers the decider uses to pull action parameters out of customer text."""

from __future__ import annotations

import re
from dataclasses import dataclass
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
