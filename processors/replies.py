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
    "negative_trajectory": (
        "I can tell this isn't getting better, and I'm sorry. A member of our support team "
        "will take it from here, with everything we've covered so far."
    ),
    "loop_detected": (
        "We seem to be going round in circles, so I'm handing this to a support specialist "
        "who can look at your account and our conversation so far."
    ),
    "low_confidence": "I want to get this right, so I'm handing you to a support specialist.",
    "refund_over_limit": (
        "That refund is above what I can approve on my own, so I've passed it to our billing "
        "team with the details; they will reply here."
    ),
    "identity_not_verified": (
        "I couldn't verify that address for your workspace, so I can't send a reset link. "
        "I'm passing this to a support specialist who can verify your identity."
    ),
    "server_error": (
        "That looks like an error on our side, so I've reported it to our engineers with your "
        "request details; a support specialist will follow up here."
    ),
    "awaiting_human": "A support specialist has your case and will reply here shortly.",
}
GENERIC_CLARIFY = "Could you tell me a little more about what you need help with?"
DECLINE = (
    "I'm sorry, that's outside what I can help with: I'm the support assistant for your CRM "
    "account (sign-in, billing, data, the API and product questions). Is there anything "
    "there I can do for you?"
)
INJECTION_REFUSAL = (
    "I can't change how I work or run commands or queries from a message, and I only share "
    "information about your own account. If you have a question about your CRM account "
    "(sign-in, billing, data, the API), tell me and I'll help."
)
CLOSING = "You're welcome! If anything else comes up, just write here."
#: Added for customers who do not write in technical terms (tone: ``basic``).
BASIC_TAIL = " If a step is unclear, tell me where you got stuck and I'll walk you through it."
#: Added for customers who write code, error codes or API terms (tone: ``technical``).
TECHNICAL_TAIL = " If it still fails, paste the exact request and the response body."


def answer_for(label: str, tone: str = "basic") -> str:
    """The answer for an intent, in the register of the customer's technical level."""
    text = ANSWERS.get(label) or CATEGORY_ANSWERS.get(category_of(label), GENERIC_CLARIFY)
    return text + (TECHNICAL_TAIL if tone == "technical" else BASIC_TAIL)


def follow_up(label: str, tone: str = "basic") -> str:
    """Reply to a follow-up (a confirmation, an address, pasted text) on the current topic."""
    return f"Thanks, that helps with your {describe(label)} request. " + answer_for(label, tone)


def describe(label: str) -> str:
    """Human wording of an intent label for clarifying questions."""
    cat, _, sub = label.partition("/")
    return f"{sub.lower()} ({cat.lower()})" if sub else cat.lower().replace("_", " ")


def clarifying_question(options: list[str], reason: str = "") -> str:
    if reason == "conflict" and len(options) == 2:
        return (
            f"You asked to {options[0]} and to {options[1]} the same thing, and I can only do "
            f"one of them: which do you want, {options[0]} or {options[1]}?"
        )
    if reason == "loop_detected":
        listed = " or ".join(describe(o) for o in options)
        which = f" Is it about {listed}?" if options else ""
        return (
            "I don't want to keep guessing. Could you describe the problem in one sentence, "
            f"with any error message you see?{which}"
        )
    if not options:
        return GENERIC_CLARIFY
    if len(options) == 1:
        return f"Just to be sure: is your question about {describe(options[0])}?"
    listed = ", ".join(describe(o) for o in options[:-1]) + f" or {describe(options[-1])}"
    return f"I want to make sure I help with the right thing: is this about {listed}?"
