"""The extract helpers live in the pure core (:mod:`processors.extract`) so the decider
can use them; re-exported here for the workflows and their callers."""

from processors.extract import (
    Money,
    amounts,
    emails,
    invoice_numbers,
    parse_number,
    wants_last_invoice,
)

__all__ = ["Money", "amounts", "emails", "invoice_numbers", "parse_number", "wants_last_invoice"]
