"""Lexical topic evidence, and its fusion with the model's intent scores. Pure.

The intent model scores a whole message; it is unsure on short or unusual phrasings and
sometimes confidently confuses neighbouring subcategories (API vs Integration, Access vs
Password, Subscription vs Renewal). Support vocabulary is far less ambiguous than the
model's scores: "webhook", "429", "invoice INV-2026-0101", "authenticator app" name their
topic. This module reads that vocabulary (a deterministic extractor over the text the
``MessageEnriched`` event carries, so replay reproduces it) and fuses it with the model:

* every label's **cue weight** is the sum of the weights of its patterns that match;
  weight 3 is a term that on its own names the topic, 2 a strong hint, 1 a weak one;
* the cue's **strength** is ``1 - exp(-weight / 2)`` (one naming term ~0.78, two ~0.95);
* the **fused score** of a label is the noisy-OR of model score and cue strength, so
  agreeing evidence adds up and a label the text does not mention keeps the model score;
* a label is **decisive** when its weight is at least 3 and ``DOMINANCE`` times the next
  label's: the text names it and nothing else as clearly. A decisive label ranks first
  whatever the model said; without one the fused scores rank as the model's would.

:func:`clauses` splits a message into its requests, so that each clause of a multi-intent
message can be given its own topic.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from events.enrichment import IntentScore

#: A decisive label's weight over the next label's.
DOMINANCE = 1.3
DECISIVE_WEIGHT = 3.0
#: A decisive label overrides a model that is confident in another label (score at least
#: the category threshold) only when the text names it this strongly.
OVERRIDE_WEIGHT = 4.0

_API_CONTEXT = (
    r"\A(?=.*\b(api|endpoint|request|requests|call|calls|response|token|oauth|sync|script|job"
    r"|integration|connector|post|get|put|patch|curl|http|errors?|status)\b)"
)

_RULES: dict[str, tuple[tuple[str, float], ...]] = {
    "TECHNICAL/API": (
        (_API_CONTEXT + r".*\b(400|401|403|404|409|413|415|422|429)(s|'s)?\b", 3.0),
        (r"\btoo many requests\b|\brate[- ]?limit(s|ed|ing)?\b|\bthrottl", 3.0),
        (_API_CONTEXT + r".*\b(api |request |call )?quotas?\b", 2.0),
        (
            r"\b(invalid_token|invalid_grant|invalid_client|invalid_scope|missing_token"
            r"|validation_failed|invalid_parameter|insufficient_scope|unauthori[sz]ed)\b",
            3.0,
        ),
        (r"\b(access|refresh|bearer|oauth2?|api) ?tokens?\b|\bclient[ _]credentials\b", 3.0),
        (r"\b(rest )?api\b|\bendpoints?\b|\boauth ?2?(\.0)?\b|\bapi key\b", 2.0),
        (r"^\s*(GET|POST|PUT|PATCH|DELETE) /|\b(GET|POST|PUT|PATCH|DELETE) /v\d", 3.0),
        (r"\?(limit|page|cursor|per_page)=|\bpaginat", 2.0),
        (r"[{,]\s*[\"']error[\"']\s*:", 3.0),
        (r"\b(5\d\d)(s)?\b(?=.*\bapi\b)|\bapi\b.*\b5\d\d\b", 2.0),
    ),
    "TECHNICAL/Integration": (
        (r"\bwebhooks?\b", 4.0),
        (r"\b(zapier|zaps?|typeform|quickbooks|xero|mailchimp|docusign|hubspot|make\.com)\b", 4.0),
        (
            r"\b(gmail|outlook|google calendar|office ?365|exchange) (sync|integration|add-?in)\b"
            r"|\b(email|calendar|inbox) sync\b|\bgmail\b|\boutlook\b",
            3.0,
        ),
        (r"\bslack\b", 4.0),
        (r"\bintegrations?\b|\bconnectors?\b|\bsync(ing|s|ed)? with\b", 1.0),
    ),
    "TECHNICAL/Performance": (
        (
            r"\b(slow(ly|er)?|sluggish|laggy|lag|latency|takes? (forever|ages|minutes)"
            r"|timing out|time ?outs?|loading for|keeps loading|spinner)\b",
            3.0,
        ),
    ),
    "TECHNICAL/Bug": (
        (r"\b(bug|glitch|crash(es|ed|ing)?|known issue)\b", 4.0),
        (r"\b(broken|blank (page|screen))\b", 3.0),
        (r"\b(doesn'?t|does not|isn'?t|is not|stopped|not) work(ing|s)?\b|\bwrong\b", 1.0),
        (r"\b(Ã¼|Ã¶|Ã¤|garbled|mojibake|weird characters)", 3.0),
    ),
    "TECHNICAL/Configuration": (
        (
            r"\bcustom (fields?|objects?)\b|\bpicklists?\b|\bpage layouts?\b"
            r"|\bvalidation rules?\b",
            3.0,
        ),
        (r"\bworkflows?\b", 4.0),
        (r"\bautomation( rules?)?\b|\btriggers?\b", 3.0),
        (r"\b(configure|configuration|set ?up|settings?)\b", 1.0),
        (r"\bfields?\b", 1.0),
    ),
    "ACCOUNT/Password": (
        (
            r"\b(pass ?words?|passwort|pasword|passwrd|passwd|pw|contrase\w*|senha"
            r"|mot de passe)\b|パスワード",
            3.0,
        ),
        (
            r"\b(forg[eo]tt?(en)?|reset|erased|lost|(don'?t|can'?t|cannot) remember|vergessen"
            r"|olvid\w*|oubli\w*|esqueci\w*|zurücksetzen)\b"
            r".{0,30}\b(pass|pw|login|credentials|contrase|senha)"
            r"|\b(passwort|contraseña|senha|mot de passe)\b.{0,20}\b(vergessen|olvid\w*|oubli\w*"
            r"|esqueci\w*)",
            3.0,
        ),
        (r"\breset (link|e-?mail)\b", 2.0),
    ),
    "ACCOUNT/Access": (
        (
            r"\block(ed|s)?( (her|him|them|my|our)sel(f|ves))? out\b|\blockout\b"
            r"|\baccount (is |got |was )?locked\b|\bunlock\b",
            4.0,
        ),
        (r"\b(can'?t|cannot|unable to|couldn'?t) (log|sign) ?in\b", 3.0),
        (r"\b(sso|saml|okta|azure ad|single sign[- ]on|scim)\b", 3.0),
        (
            r"\b(new|add(ing)?( a)?( new)?|invite|remove|deactivate|offboard)\b.{0,20}\busers?\b"
            r"|\b(remove|revoke) (her|his|their) access\b|\bleft the company\b",
            3.0,
        ),
        (r"\b(log ?in|sign ?in|access)\b", 1.0),
    ),
    "ACCOUNT/MFA": (
        (
            r"\b(mfa|2fa|two[- ]factor|2-step|two[- ]step|authenticator|backup codes?"
            r"|one[- ]time (code|password)|otp|verification code)\b",
            4.0,
        ),
    ),
    "ACCOUNT/Permissions": (
        (r"\b(permissions?|roles?|sharing rules?|admin rights|access rights|visibility)\b", 3.0),
        (
            r"\b(sales rep|standard|custom|user) profiles?\b|\bprofiles? (so|to) (they|she|he)\b",
            3.0,
        ),
        (
            r"\b(can'?t|cannot|doesn'?t|don'?t) (see|have) (the|an?|any) \w+ (option|button|tab)\b",
            2.0,
        ),
    ),
    "ACCOUNT/Profile": (
        (
            r"\b(my|the) (profile|display name|profile (photo|picture)|avatar|signature"
            r"|time ?zone)\b",
            3.0,
        ),
        (
            r"\bchange (the|my) (e-?mail|name)\b.{0,30}\b(log|sign) ?in\b"
            r"|\b(login|sign-?in) e-?mail\b",
            4.0,
        ),
    ),
    "BILLING/Invoice": (
        (
            r"\binvoices?\b|\bINV-?\d{4}|\brechnung\w*|\bfactur[ae]s?\b|\bfatura\b|\breceipts?\b"
            r"|\bbilling statement\b",
            3.0,
        ),
        (r"\b(po|purchase order) number\b|\bvat (id|number)\b", 2.0),
    ),
    "BILLING/Payment": (
        (
            r"\b(payment( method)?s?|credit card|debit card|card (was |got )?declined|sepa"
            r"|direct debit|bank transfer|wire transfer|unpaid|overdue|dunning|past due)\b",
            3.0,
        ),
        (r"\bread-only\b|\bpay(ing)? (by|with)\b", 2.0),
        (r"\b(wasn'?t|was not|isn'?t|not|hasn'?t been|never) paid\b", 3.0),
    ),
    "BILLING/Subscription": (
        (r"\b(subscriptions?|upgrade|downgrade|add-?ons?|trial)\b", 3.0),
        (
            r"\bseats?\b"
            r"|\b(go|move|switch) (down|up|back)? ?to (starter|professional|enterprise)\b",
            3.0,
        ),
        (r"\b(starter|professional|enterprise)( plan)?\b|\bplans?\b", 1.0),
        (r"\bcancel (my|our|the) (account|plan|subscription)\b", 3.0),
    ),
    "BILLING/Renewal": (
        (r"\brenew(s|ed|ing)?\b|\brenewal (date|quote|notice|invoice)\b|\bauto-?renew\w*", 4.0),
        (r"\brenewals?\b", 2.0),
    ),
    "BILLING/Refund": (
        (
            r"\brefund\w*|\bmoney back\b|\breembols\w*|\berstatt\w*|\brembours\w*"
            r"|\b(charged|billed) twice\b|\bdouble[- ]charged\b|\bduplicate charge\b"
            r"|\bovercharged\b",
            4.0,
        ),
    ),
    "PRODUCT/Features": (
        (
            r"\b(does|do|can) (casestream|it|you|the crm) (support|have|do)\b|\bis there a way\b"
            r"|\bis it possible\b|\bfeatures?\b",
            2.0,
        ),
        (r"\bhipaa\b|\bon-?prem(ise)?\b|\bwhich plan (gives|has|includes)\b", 3.0),
        (r"\bpipelines?\b", 2.0),
    ),
    "PRODUCT/Training": (
        (
            r"\b(training|tutorials?|webinars?|courses?|academy|onboarding|certification"
            r"|videos?)\b",
            3.0,
        ),
    ),
    "PRODUCT/Documentation": (
        (
            r"\b(docs|documentation|api reference|developer docs|manual|help (center|centre)"
            r"|release notes|changelog)\b",
            3.0,
        ),
    ),
    "PRODUCT/Best Practices": (
        (
            r"\bbest practices?\b|\brecommend(ed|ation)?\b|\bwhat'?s the best way\b"
            r"|\bwhat is the best way\b",
            3.0,
        ),
    ),
    "DATA/Import": (
        (
            r"\bimport(s|ing|ed|er)?\b|\bimportier\w*|\bimportar\b|インポート"
            r"|\bupload(ing)? (a |the |our |my )?(csv|spreadsheet|file)\b"
            r"|\bbulk (load|upload)\b|\bmigrat(e|ing|ion) from\b",
            3.0,
        ),
        (r"\bcsv\b|\bspreadsheets?\b", 1.0),
    ),
    "DATA/Export": (
        (
            r"\bexport(s|ing|ed)?\b|\bexportier\w*|\bexportar\b|エクスポート"
            r"|\bdownload (all|my|our|the) (data|records|contacts)\b|\bbackups?\b",
            3.0,
        ),
    ),
    "DATA/Reports": ((r"\breports?\b|\breport builder\b|\bberichte?\b|\binformes?\b", 3.0),),
    "DATA/Analytics": (
        (r"\b(dashboards?|widgets?)\b", 4.0),
        (r"\b(charts?|analytics|kpis?|forecast(s|ing)?|metrics)\b", 3.0),
    ),
    "DATA/Quality": (
        (r"\bduplicates?\b|\bdedup\w*|\bmerge\b|\bdata quality\b|\bclean ?up\b", 3.0),
    ),
}

_COMPILED: dict[str, tuple[tuple[re.Pattern[str], float], ...]] = {
    label: tuple((re.compile(p, re.IGNORECASE | re.DOTALL), w) for p, w in rules)
    for label, rules in _RULES.items()
}
#: Only the first this many characters are read (bounded time on 100,000-char inputs).
MAX_CHARS = 4_000


def weights(text: str) -> dict[str, float]:
    """Cue weight per label the text mentions (labels it does not mention are absent)."""
    return dict(_weights(text[:MAX_CHARS]))


@functools.lru_cache(maxsize=512)
def _weights(head: str) -> tuple[tuple[str, float], ...]:
    # a pure function of the text: the policy reads the same message several times
    out: dict[str, float] = {}
    for label, rules in _COMPILED.items():
        w = sum(weight for rx, weight in rules if rx.search(head))
        if w:
            out[label] = w
    return tuple(out.items())


def strength(weight: float) -> float:
    return 1.0 - math.exp(-weight / 2.0)


def decisive(found: dict[str, float]) -> str | None:
    """The one label the text names clearly, if any."""
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
    if not ranked or ranked[0][1] < DECISIVE_WEIGHT:
        return None
    if len(ranked) > 1 and ranked[0][1] < DOMINANCE * ranked[1][1]:
        return None
    return ranked[0][0]


@dataclass(frozen=True, slots=True)
class Fused:
    """The intents after fusion (best first) and the label the text names, if any."""

    intents: tuple[IntentScore, ...]
    decisive: str | None
    #: The decisive label's cue weight (0 without one).
    weight: float = 0.0
    #: The label the text names, before a confident model's veto (see ``fuse``).
    cue: str | None = None


def fuse(
    model: tuple[IntentScore, ...],
    text: str,
    topics: frozenset[str],
    threshold: Callable[[str], float] | None = None,
) -> Fused:
    """The model's intents with the text's topic cues folded in (rules: module doc).

    Special labels (human request, off-topic) keep the model's score; only ``topics``
    take cues. With ``threshold`` (the per-category auto-resolve threshold), a model that
    is confident in another label is overridden only by a label named with at least
    ``OVERRIDE_WEIGHT``.
    """
    found = {k: v for k, v in weights(text).items() if k in topics}
    if not found:
        return Fused(model, None)
    named = cue = decisive(found)
    if named is not None and threshold is not None and model:
        top = model[0]
        confident = top.label != named and top.score >= threshold(top.label)
        if confident and found[named] < OVERRIDE_WEIGHT:
            named = None
    scores = {i.label: i.score for i in model}
    for label, w in found.items():
        m = scores.get(label, 0.0)
        scores[label] = round(1.0 - (1.0 - m) * (1.0 - strength(w)), 6)
    ranked = sorted(scores.items(), key=lambda kv: (kv[0] != named, -kv[1], kv[0]))
    intents = tuple(IntentScore(label=k, score=v) for k, v in ranked)
    return Fused(intents, named, found[named] if named else 0.0, cue)


_OFF_TOPIC = re.compile(
    r"\b(bitcoin|crypto(currency)?|stocks?|shares|lottery|weather|recipes?|football|soccer"
    r"|champions league|world cup|movies?|songs?|poems?|jokes?|horoscope|dating|homework)\b",
    re.IGNORECASE,
)


def off_topic(text: str) -> bool:
    """The text talks about something no support topic covers (sports, finance, food...)."""
    return _OFF_TOPIC.search(text[:MAX_CHARS]) is not None


# --- clauses ---------------------------------------------------------------------------

_CLAUSE_SPLIT = re.compile(
    r"(?:\?|;|\n|\s\d\)\s|^\d\)\s|\b(?:and also|also|plus|and then|second(?:ly)?|third(?:ly)?"
    r"|first(?:ly)?|another thing|oh,? and)\b|,\s*and\b|\s+and\s+(?=(?:how|what|can|could"
    r"|where|when|why|do|does|is|are|send|refund|reset|tell|please)\b)"
    r"|,\s*(?=(?:send|tell|refund|reset|and|can|could|how|what|where|please)\b))",
    re.IGNORECASE | re.MULTILINE,
)


def clauses(text: str) -> list[str]:
    """The message's requests in order (empty pieces dropped)."""
    parts = _CLAUSE_SPLIT.split(text[:MAX_CHARS])
    return [p.strip(" ,.:-") for p in parts if p and len(p.strip(" ,.:-").split()) >= 2]


def clause_topics(text: str, topics: frozenset[str]) -> list[str]:
    """The decisive topic of each clause, in order, repeats dropped."""
    return [label for label, _ in clause_requests(text, topics)]


def clause_requests(text: str, topics: frozenset[str]) -> list[tuple[str, str]]:
    """(topic, the clauses about it) for each clause with a decisive topic, in the order
    the topics are first raised."""
    found: dict[str, list[str]] = {}
    for clause in clauses(text):
        named = decisive({k: v for k, v in weights(clause).items() if k in topics})
        if named is not None:
            found.setdefault(named, []).append(clause)
    return [(label, ". ".join(parts)) for label, parts in found.items()]
