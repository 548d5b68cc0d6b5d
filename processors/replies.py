"""Reply texts the policy chooses from: pure data, no model calls.

Until the knowledge-base responder lands these are short, honest answers per intent
that point at the next step; the decider never invents facts beyond them.
"""

from __future__ import annotations

from processors.taxonomy import category_of

ANSWERS: dict[str, str] = {
    "ACCOUNT/Password": (
        "I can help you reset your password. Open the sign-in page, choose 'Forgot password' "
        "and enter your account email; a single-use reset link arrives within a few minutes."
    ),
    "ACCOUNT/Access": (
        "If you are locked out, wait 15 minutes or ask your workspace admin to unlock you; "
        "then sign in again or reset your password from the sign-in page."
    ),
    "ACCOUNT/MFA": (
        "To reset two-factor authentication, use one of your backup codes or ask an admin "
        "to reset MFA for your user under Settings > Users."
    ),
    "TECHNICAL/API": (
        "API errors usually come from authentication or limits: a 401 means the OAuth token "
        "is missing or expired (request a new one), a 429 means you hit the rate limit (retry "
        "after the Retry-After header), and a 400 names the malformed field in its body."
    ),
    "BILLING/Invoice": "You can download every invoice under Settings > Billing > Invoices.",
    "BILLING/Refund": (
        "Refunds go back to the original payment method; tell me the invoice number and I "
        "will check whether it qualifies."
    ),
    "DATA/Export": (
        "To export data, open the object list, choose Export, pick CSV or XLSX and the fields; "
        "large exports are emailed to you as a download link."
    ),
    "DATA/Import": (
        "To import data, go to Data > Import, upload a CSV with a header row and map each "
        "column to a field before you start the import."
    ),
}

CATEGORY_ANSWERS: dict[str, str] = {
    "TECHNICAL": "Let's look at the technical issue together: which error do you see, and when?",
    "ACCOUNT": "I can help with your account settings; your admin can also change them.",
    "BILLING": "Your billing details are under Settings > Billing.",
    "PRODUCT": "Our help centre has a guide for this; tell me what you want to achieve.",
    "DATA": "Data tools live under the Data menu: import, export, reports and analytics.",
}

HANDOVER = {
    "explicit_human_request": (
        "Of course. I'm connecting you with a member of our support team now."
    ),
    "customer_frustrated": (
        "I'm sorry this has been so frustrating. I'm bringing in a member of our support team "
        "who will pick this up with everything you've told me."
    ),
    "out_of_scope": "That's outside what I can help with here, so I'm passing you to our team.",
    "low_confidence": "I want to get this right, so I'm handing you to a support specialist.",
    "awaiting_human": "A support specialist has your case and will reply here shortly.",
}
GENERIC_CLARIFY = "Could you tell me a little more about what you need help with?"


def answer_for(label: str) -> str:
    return ANSWERS.get(label) or CATEGORY_ANSWERS.get(category_of(label), GENERIC_CLARIFY)


def describe(label: str) -> str:
    """Human wording of an intent label for clarifying questions."""
    cat, _, sub = label.partition("/")
    return f"{sub.lower()} ({cat.lower()})" if sub else cat.lower().replace("_", " ")


def clarifying_question(options: list[str]) -> str:
    if not options:
        return GENERIC_CLARIFY
    if len(options) == 1:
        return f"Just to be sure: is your question about {describe(options[0])}?"
    listed = ", ".join(describe(o) for o in options[:-1]) + f" or {describe(options[-1])}"
    return f"I want to make sure I help with the right thing: is this about {listed}?"
