"""Pure parameter extraction from customer text."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent.workflows.extract import (
    Money,
    amounts,
    emails,
    invoice_numbers,
    parse_number,
    wants_last_invoice,
)
from processors.extract import charged_on


def test_emails_in_order_lower_cased_and_distinct() -> None:
    text = "Reset it for Dana@Acme.example. Or li.wei@acme.example, or dana@acme.example again."
    assert emails(text) == ["dana@acme.example", "li.wei@acme.example"]


def test_no_email() -> None:
    assert emails("my login is dana at acme") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("please refund INV-2026-0102", ["INV-2026-0102"]),
        ("invoice inv-2026-0103 and INV 2026 0101", ["INV-2026-0103", "INV-2026-0101"]),
        ("Invoice #2026-0201 was charged twice", ["INV-2026-0201"]),
        ("INV-2026-0102, INV-2026-0102", ["INV-2026-0102"]),
        ("order 2026-0102", []),
    ],
)
def test_invoice_numbers(text: str, expected: list[str]) -> None:
    assert invoice_numbers(text) == expected


@pytest.mark.parametrize(
    "text",
    ["send me my last invoice", "Where is the latest invoice?", "can I get my most recent bill"],
)
def test_wants_last_invoice(text: str) -> None:
    assert wants_last_invoice(text)


def test_does_not_want_last_invoice() -> None:
    assert not wants_last_invoice("invoice INV-2026-0101 please")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("refund 49 EUR", [Money(Decimal(49), "EUR")]),
        (
            "I was charged €490 instead of €49",
            [Money(Decimal(490), "EUR"), Money(Decimal(49), "EUR")],
        ),
        ("$1,200 is way too much", [Money(Decimal(1200), "USD")]),
        ("1.200,50 € bitte", [Money(Decimal("1200.50"), "EUR")]),
        ("USD 99 charged twice", [Money(Decimal(99), "USD")]),
        ("about 99.50 dollars", [Money(Decimal("99.50"), "USD")]),
        ("49,00 euros", [Money(Decimal("49.00"), "EUR")]),
        ("we have 12 users", []),
    ],
)
def test_amounts(text: str, expected: list[Money]) -> None:
    assert amounts(text) == expected


def test_parse_number_thousands_vs_decimals() -> None:
    assert parse_number("1,200") == Decimal(1200)
    assert parse_number("1.200") == Decimal(1200)
    assert parse_number("49,5") == Decimal("49.5")
    assert parse_number("1,234,567.89") == Decimal("1234567.89")


def test_money_to_dict() -> None:
    assert Money(Decimal("49.00"), "EUR").to_dict() == {"amount": "49.00", "currency": "EUR"}


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("we were charged 5 days ago", "2026-09-07"),
        ("two debits of 49 EUR on our card yesterday", "2026-09-11"),
        ("it was charged about two months ago", "2026-07-14"),
        ("fomos cobrados 99 USD na fatura há quatro dias", "2026-09-08"),
        ("we were charged on Tuesday", "2026-09-08"),  # 2026-09-12 is a Saturday
        ("billed 99 USD last week (INV-2026-0201)", "2026-09-05"),
        ("please refund it", None),  # no statement: the billing record decides
    ],
)
def test_when_the_customer_says_they_were_charged(text: str, day: str | None) -> None:
    assert charged_on((text,), "2026-09-12T12:00:00+00:00") == day
