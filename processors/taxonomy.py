"""The blueprint's ticket taxonomy, per-category auto-resolve thresholds, and the lexical
cues the conversation policy reads from a message."""

from __future__ import annotations

import re

CATEGORIES: dict[str, tuple[str, ...]] = {
    "TECHNICAL": ("API", "Integration", "Performance", "Bug", "Configuration"),
    "ACCOUNT": ("Access", "Password", "Permissions", "MFA", "Profile"),
    "BILLING": ("Invoice", "Payment", "Subscription", "Renewal", "Refund"),
    "PRODUCT": ("Features", "Training", "Documentation", "Best Practices"),
    "DATA": ("Import", "Export", "Reports", "Analytics", "Quality"),
}

#: Minimum top-intent score to answer without a human (blueprint v1, section 2).
AUTO_RESOLVE_THRESHOLDS: dict[str, float] = {
    "TECHNICAL": 0.70,
    "ACCOUNT": 0.90,
    "BILLING": 0.60,
    "PRODUCT": 0.85,
    "DATA": 0.75,
}

HUMAN_REQUEST = "human_request"
OUT_OF_SCOPE = "out_of_scope"
SPECIAL_LABELS = (HUMAN_REQUEST, OUT_OF_SCOPE)

#: Top-two intents closer than this are ambiguous: ask a clarifying question.
AMBIGUITY_MARGIN = 0.15


def category_of(label: str) -> str:
    """``ACCOUNT/Password`` -> ``ACCOUNT``; special labels map to themselves."""
    return label.split("/", 1)[0]


def threshold_for(label: str) -> float:
    """Auto-resolve threshold of the label's category (1.0 for special labels)."""
    return AUTO_RESOLVE_THRESHOLDS.get(category_of(label), 1.0)


def all_intent_labels() -> list[str]:
    labels = [f"{cat}/{sub}" for cat, subs in CATEGORIES.items() for sub in subs]
    return [*labels, *SPECIAL_LABELS]


# --- lexical cues the policy reads from the message text ------------------------------
# The model scores intents; these cues carry what a classifier of one message cannot
# see (does the customer refer back, repeat, contradict themselves, ask for a person?).
# They are pure functions of the text, so replaying the log reproduces every decision.

_HUMAN_WORDS = re.compile(
    r"\b(human|person|people|agent|manager|supervisor|someone|somebody|representative"
    r"|engineer|staff|operator|real one|mensch|mitarbeiter|persona|humano|personne)\b",
    re.I,
)
_HUMAN_ASK = re.compile(
    r"\b(speak|talk|transfer|connect|put|get|escalate|give)\b(\s+\w+){0,4}?\s+(to|with|through"
    r"|me)\b(\s+\w+){0,3}?\s+(a |an |the |ur |your |actual |real )*(human|person|manager"
    r"|supervisor|agent|engineer|representative|someone|somebody)\b",
    re.I,
)
_BOT_QUESTION = re.compile(r"\bare you (a |an )?(real|human|bot|robot|an ai|ai|person)\b", re.I)
_LOOP = re.compile(
    r"(the thing i asked|what i asked (about|before)|like i said|same (\w+ )?as (before|last time)"
    r"|u know what i mean|you know what i mean|you know what i meant|not what i asked"
    r"|lo que pregunt|was ich (schon )?gefragt|ce que j'ai demand|^\W*$)",
    re.I,
)
_RESUME = re.compile(
    r"\b(back to|return(ing)? to|where were we|now,? (for|about) the|(and|now|so),? for the"
    r"|(ok|okay|so),? (so,? )?the|as for the|about the .{1,40} again|so,? (the|about)"
    r"|now,? about the)\b",
    re.I,
)
_SWITCH = re.compile(
    r"\b(actually|hold on|hang on|wait|different question|unrelated|quick aside|aside"
    r"|btw|by the way|before that|first i need|completely different|one moment|oh,? and)\b",
    re.I,
)
_CONFIRM = re.compile(
    r"^\W*(yes|yep|yeah|yup|ya|sure|ok|okay|please|pls|do it|go ahead|send it|correct|right"
    r"|si|sí|ja|oui|sim|exactly|that's it|thats it|done)\b",
    re.I,
)
_CLOSING = re.compile(
    r"\b(thanks|thank you|thx|ty|cheers|appreciated|bye|goodbye|have a nice day|never ?mind"
    r"|nvm|it worked|that works|that helped|fair enough|got it|all good|sorted|danke|gracias"
    r"|merci|obrigad[oa])\b",
    re.I,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_INVOICE = re.compile(r"\bINV-\d{4}-\d{3,}\b", re.I)
_CODE = re.compile(
    r"(```|[{}]|\bHTTP/\d|\btraceback\b|\bcurl\b|\bexception\b|here'?s my code|^\s*(GET|POST"
    r"|PUT|DELETE|PATCH) /|Authorization:|\"error\")",
    re.I | re.M,
)
_TECHNICAL = re.compile(
    r"(\b(api|oauth|token|json|http|https|curl|endpoint|webhook|sql|payload|header|sdk"
    r"|bearer|regex|utf-8|csv|stack ?trace|status code|rate limit|sso|saml|scim)\b"
    r"|\b[1-5]\d\d\b(?= error| status|s\b)|[{}`])",
    re.I,
)
_MULTI = re.compile(
    r"\b(and also|also|plus|and then|two things?|2 things|three quick|several things)\b"
    r"|,\s*and\b",
    re.I,
)
#: Legal, compliance and licensing commitments (signing agreements, HIPAA, on-premise
#: licences, custom quotes): no help article can promise them, a person must.
_COMMITMENT = re.compile(
    r"\b(sign|countersign|execute|negotiate)\b.{0,40}\b(agreements?|contracts?|baa|dpa|nda"
    r"|addendum|msa)\b|\bhipaa\b|\bbusiness associate agreement\b|\bon-?prem(ise|ises)?\b"
    r"|\bself-?host(ed|ing)?\b|\b(custom|special|volume) (discount|pricing|quote)\b"
    r"|\blicen[cs]e (would )?(cost|price|fee)",
    re.I,
)
#: Opposite requests: (name, on pattern, off pattern).
CONFLICT_PAIRS: tuple[tuple[str, str, str], ...] = (
    (
        "enable/disable",
        r"\b(enable|turn(ed|ing)? (it )?on|switch(ed)? on|activate|keep (it )?on)\b",
        r"\b(disable|turn(ed|ing)? (it )?off|switch(ed)? off|deactivate|keep (it )?off)\b",
    ),
    ("add/remove", r"\badd\b", r"\bremove\b"),
    ("upgrade/downgrade", r"\bupgrade\b", r"\bdowngrade\b"),
    ("required/optional", r"\brequired?\b", r"\boptional\b"),
    ("cancel/renew", r"\bcancel\b", r"\brenew\b"),
)
_WORD = re.compile(r"[a-z0-9]+")


def asks_for_human(text: str) -> bool:
    """An explicit request to talk to a person (not a question about the bot)."""
    return bool(_HUMAN_ASK.search(text)) and not _BOT_QUESTION.search(text)


def mentions_human(text: str) -> bool:
    return bool(_HUMAN_WORDS.search(text)) and not _BOT_QUESTION.search(text)


def asks_commitment(text: str) -> bool:
    """A request for a legal, compliance or licensing commitment (see ``_COMMITMENT``)."""
    return bool(_COMMITMENT.search(text))


def asks_about_bot(text: str) -> bool:
    return bool(_BOT_QUESTION.search(text))


def refers_back(text: str) -> bool:
    """A contentless reference to an earlier question ("the thing I asked about")."""
    return bool(_LOOP.search(text.strip()))


def resumes(text: str) -> bool:
    return bool(_RESUME.search(text))


def switches(text: str) -> bool:
    return bool(_SWITCH.search(text))


def is_closing(text: str) -> bool:
    """Thanks / bye / never mind: a short message that ends a topic, not a question."""
    return "?" not in text and len(text.split()) <= 12 and bool(_CLOSING.search(text))


def is_follow_up(text: str) -> bool:
    """Low-information continuation: confirmation, email, invoice number, pasted code."""
    words = len(text.split())
    if _CODE.search(text):
        return True
    if words <= 8 and (_CONFIRM.search(text) or _EMAIL.search(text) or _INVOICE.search(text)):
        return True
    return words <= 3 and not text.strip().endswith("?")


def joins_requests(text: str) -> bool:
    return bool(_MULTI.search(text))


def technical_level(text: str) -> str:
    """``technical`` when the customer writes in technical terms, code or error codes."""
    return "technical" if len(_TECHNICAL.findall(text)) >= 1 else "basic"


def text_key(text: str) -> str:
    """A normalised form of the message for spotting repeats."""
    return " ".join(_WORD.findall(text.lower()))[:200]


def polarities(text: str) -> tuple[str, ...]:
    """``name:on`` / ``name:off`` for every opposite-request verb the text contains."""
    out: list[str] = []
    for name, on, off in CONFLICT_PAIRS:
        if re.search(on, text, re.I):
            out.append(f"{name}:on")
        if re.search(off, text, re.I):
            out.append(f"{name}:off")
    return tuple(out)


def conflict(text: str, previous: tuple[str, ...] = ()) -> str | None:
    """The opposite pair requested at once (or in this and the previous message, when
    this one starts with "and"/"also"), else ``None``."""
    now = polarities(text)
    continued = re.match(r"^\W*(and|also|but also|plus)\b", text, re.I) is not None
    seen = set(now) | (set(previous) if continued else set())
    for name, _, _ in CONFLICT_PAIRS:
        if f"{name}:on" in seen and f"{name}:off" in seen and any(p.startswith(name) for p in now):
            return name
    return None


def topic_labels() -> list[str]:
    """The taxonomy's ``CATEGORY/Subcategory`` labels (no special labels)."""
    return [f"{cat}/{sub}" for cat, subs in CATEGORIES.items() for sub in subs]
