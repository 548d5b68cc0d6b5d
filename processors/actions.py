"""Which action a topic needs, and what to tell the customer about its result. Pure.

:func:`plan` picks the action for a topic answer from the conversation so far
(``ActionRequested.kind`` and ``params``); :func:`result_reply` turns an
``ActionCompleted`` into the customer-facing text, or says that the result calls for a
clarification or an escalation instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from events.actions import ActionCompleted
from processors import replies
from processors.extract import (
    Money,
    amounts_in_context,
    charged_on,
    emails,
    invoice_numbers,
    wants_last_invoice,
)

Params = dict[str, str]

_RESET_WORDS = re.compile(
    r"\b(reset|forgot|forgotten|password|passwort|contrase|mot de passe|link)", re.I
)
#: An API error the diagnosis can work on: a status code, an OAuth or validation error
#: name, a pasted error body or rate-limit header. A question about the API without any
#: ("how long is a token valid?") is answered from the knowledge base instead.
_API_EVIDENCE = re.compile(
    r"\b[45]\d\d(s|'s)?\b|\binvalid_\w+|\bvalidation_failed\b|\bunauthori[sz]ed\b|\bforbidden\b"
    r"|too many requests|rate.?limit|retry-after|\"error\"|\b(missing|expired)_token\b"
    r"|\bbad request\b",
    re.I,
)
#: A customer who asks for the link again on purpose (it expired, never arrived).
_RESEND = re.compile(
    r"\b(expired|another|new one|a new (link|one)|again|resend|didn'?t (get|receive|arrive)"
    r"|never (got|came|arrived)|not (received|arrived))\b",
    re.I,
)
_INVOICE_WORDS = re.compile(r"\binvoice|\bbill\b|rechnung|factura|facture|fatura", re.I)
#: Amounts that are not what the customer wants back ("override the 100 EUR limit").
_NOT_THE_AMOUNT = re.compile(r"\b(limit|maximum|max|up to|threshold)\b", re.I)


def plan(
    texts: tuple[str, ...],
    text: str,
    intent: str,
    occurred_at: str,
    done: tuple[str, ...] = (),
) -> tuple[str, Params]:
    """The action for answering ``intent``; ``texts`` are the earlier turns, ``text`` this one,
    ``done`` the workflow requests already made (``ConversationState.done``).

    A workflow when the conversation has what it needs, else a knowledge-base answer;
    ``("none", {"reply": ...})`` when the workflow was already run for the same thing.
    """
    turns = (*texts, text)
    made = {d.partition("|")[2] for d in done}
    if intent == "ACCOUNT/Password" or (
        intent == "ACCOUNT/Access" and any(_RESET_WORDS.search(t) for t in turns)
    ):
        found = _latest(turns, emails)
        if found:
            if f"password_reset:{found}" in made and not emails(text) and not _RESEND.search(text):
                return "none", {"reply": already_sent(found)}
            return "password_reset", {"email": found}
    if intent == "TECHNICAL/API" and any(_API_EVIDENCE.search(t) for t in turns):
        return "api_diagnosis", {"text": "\n".join(turns), "now": occurred_at}
    if intent == "BILLING/Invoice":
        return "invoice_lookup", {"invoice": _invoice(turns)}
    if intent == "BILLING/Refund":
        money = _refund_amount(turns)
        numbers = _latest(turns, invoice_numbers)
        if money is not None or numbers or any(_INVOICE_WORDS.search(t) for t in turns):
            params = {"invoice": _invoice(turns)}
            if f"refund:{params['invoice']}" in made:
                return "none", {"reply": ALREADY_REFUNDED}
            if money is not None:
                params |= {"amount": format(money.amount, "f"), "currency": money.currency}
            charged = charged_on(turns, occurred_at)
            if charged:
                params["charged_on"] = charged
            return "refund", params
    return "answer", {"question": text, "history": "\n".join(texts)}


_STATUS = re.compile(r"\b([45]\d\d)(?:s|'s)?\b")
_RATE = re.compile(r"\b429(?:s|'s)?\b|too many requests|rate.?limit", re.I)
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+|\s+(?:and|but|while)\s+(?=\S*\s*\b[45]\d\d)")


def separate_problems(text: str, occurred_at: str) -> list[Params]:
    """A second diagnosis when one message reports a rate limit *and* another error ("429s
    in the morning and 401s in the afternoon"): the diagnosis of the whole text names the
    other error, this one the rate limit, from the sentences about it alone."""
    others = {c for c in _STATUS.findall(text) if c != "429"}
    if not _RATE.search(text) or not others:
        return []
    about = [s for s in _SENTENCES.split(text) if _RATE.search(s)]
    return [{"text": "\n".join(about), "now": occurred_at}] if about else []


def already_sent(email: str) -> str:
    return (
        f"I've already sent a reset link to {mask(email)}, so I won't send another one: "
        "please check your inbox and spam folder. The link is valid for 30 minutes and works "
        "once; if it has expired, tell me and I'll send a new one."
    )


ALREADY_REFUNDED = (
    "That refund is already on its way: it goes back to the original payment method within "
    "5-10 business days."
)


def _refund_amount(turns: tuple[str, ...]) -> Money | None:
    """The amount to refund: the newest turn that names one; of several, the largest that
    is not a limit the customer quotes (a smaller guess could slip under the limit)."""
    for t in reversed(turns):
        found = amounts_in_context(t)
        wanted = [m for m, around in found if not _NOT_THE_AMOUNT.search(around)]
        chosen = wanted or [m for m, _ in found]
        if chosen:
            return max(chosen, key=lambda m: m.amount)
    return None


def _latest(turns: tuple[str, ...], find: object) -> str | None:
    for t in reversed(turns):
        found = find(t)  # type: ignore[operator]
        if found:
            return str(found[-1])
    return None


def _invoice(turns: tuple[str, ...]) -> str:
    """This turn's invoice number, "last" if it asks for the latest, else an earlier one."""
    now = turns[-1]
    numbers = invoice_numbers(now)
    if numbers:
        return numbers[-1]
    if wants_last_invoice(now):
        return "last"
    return _latest(turns[:-1], invoice_numbers) or "last"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a result calls for: ``reply`` (text), ``clarify`` (question) or ``escalate``."""

    action: str
    text: str = ""
    reason: str = ""


def mask(email: str) -> str:
    """``dana@acme.example`` -> ``d***@acme.example``."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if at else "your address"


IDENTITY_RETRY = (
    "I couldn't find an account with that email address in your workspace, so I can't send "
    "a reset link to it. Could you check it, or give me the address you sign in with?"
)


def result_reply(done: ActionCompleted, identity_failures: int, tone: str = "basic") -> Verdict:
    """The reply, question or escalation that ``done`` calls for.

    ``identity_failures`` counts earlier failed verifications in the conversation.
    """
    d, outcome = done.details, done.outcome
    if outcome == "password_reset_sent":
        to = d.get("to") or "your account's email address"
        return Verdict(
            "reply",
            f"I've sent a password reset link to {to}. It is valid for 30 minutes and works "
            "once. Completing the reset also unlocks your account if it was locked.",
        )
    if outcome == "identity_not_verified":
        if identity_failures >= 1:
            return Verdict("escalate", reason="identity_not_verified")
        return Verdict("clarify", IDENTITY_RETRY, "identity_not_verified")
    if outcome == "password_reset_blocked":
        return Verdict(
            "reply",
            "I can't send another reset link right now: the limit for reset links is reached "
            "or the account is locked. Please wait 15 minutes or ask your workspace admin to "
            "unlock you under Settings > Users.",
        )
    if outcome in (
        "token_expiry_identified",
        "token_invalid_identified",
        "malformed_field_identified",
        "permission_denied_identified",
    ):
        return Verdict("reply", d.get("fix") or replies.answer_for("TECHNICAL/API", tone))
    if outcome == "rate_limit_explained":
        return Verdict("reply", _rate_limit(d))
    if outcome == "needs_more_info":
        question = d.get("question") or "Could you give me a little more detail?"
        return Verdict("clarify", question, "needs_more_info")
    if outcome == "invoice_sent":
        number, path = d.get("number", ""), d.get("download_path", "")
        return Verdict(
            "reply",
            f"Here is invoice {number} for {d.get('amount', '')} {d.get('currency', '')}: "
            f"download it from {path} (also under Settings > Billing > Invoices).",
        )
    if outcome == "invoice_not_found":
        return Verdict(
            "reply",
            "I couldn't find that invoice in your workspace. Your invoices are all listed under "
            "Settings > Billing > Invoices; tell me the number (INV-YYYY-NNNN) if you need one.",
        )
    if outcome == "refund_issued":
        return Verdict(
            "reply",
            f"I've issued a refund of {d.get('amount', '')} {d.get('currency', '')} for invoice "
            f"{d.get('invoice', '')}. It goes back to the original payment method within 5-10 "
            "business days.",
        )
    if outcome == "refund_rejected":
        why = f" ({done.reason})" if done.reason else ""
        return Verdict(
            "reply",
            f"I can't refund this automatically{why}: refunds are possible within 14 days of "
            "the charge. Our billing team can review exceptions if you reply with the details.",
        )
    if outcome == "escalate" and done.reason == "refund_window_passed":
        return Verdict(
            "reply",
            f"Invoice {d.get('invoice_number', '')} was charged more than 14 days ago, so it is "
            "outside the refund window and I can't refund it automatically. Refunds go back to "
            "the original payment method and are possible within 14 days of the charge.",
        )
    if outcome == "escalate":
        reason = "refund_over_limit" if done.kind == "refund" else "server_error"
        return Verdict("escalate", reason=reason)
    return Verdict("reply", "")  # error or unknown: the caller falls back to the template


def _rate_limit(d: dict[str, str] | object) -> str:
    details = d if isinstance(d, dict) else dict(d)  # type: ignore[call-overload]
    limit = details.get("limit_per_min")
    plan_name = details.get("plan")
    head = "You've hit the API rate limit"
    if limit:
        head += f" of {limit} requests per minute" + (
            f" on the {plan_name} plan" if plan_name else ""
        )
    wait = details.get("retry_after_s")
    advice = (
        f" Wait {wait} seconds (the Retry-After header) before retrying"
        if wait
        else " Wait for the number of seconds in the Retry-After header before retrying"
    )
    fix = details.get("fix", "")
    return f"{head}.{advice}, then back off exponentially. {fix}".strip()
