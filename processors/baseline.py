"""A transparent lexical baseline for intent, sentiment, language and risk flags.

It is a rule set, not a learned model, and says so in its name
(``baseline-lexical``); the ONNX models replace it behind the same port. Each rule is
a regular expression with a weight; a label's score is its matched weight over the
total matched weight plus a prior, so one strong cue gives ~0.8 and agreeing cues
push towards 1. The digest recorded in events is the SHA-256 of the rule set.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence

from events.enrichment import IntentScore, ModelInfo, Sentiment
from processors.ports import Prediction

MODEL_NAME = "baseline-lexical"
MODEL_VERSION = "1"
PRIOR = 0.5

INTENT_RULES: dict[str, tuple[tuple[str, float], ...]] = {
    "ACCOUNT/Password": (
        (r"\b(forgot|forgotten|reset|change|lost)\b.{0,20}\bpass ?words?\b", 4.0),
        (r"\bpass ?words?\b", 2.0),
        (r"\breset link\b", 2.0),
    ),
    "ACCOUNT/Access": (
        (r"\b(locked out|lockout|can'?t log ?in|cannot log ?in|unable to log ?in|sign in)\b", 2.5),
        (r"\b(login|log in|access)\b", 1.0),
    ),
    "ACCOUNT/MFA": ((r"\b(mfa|2fa|two[- ]factor|authenticator|one[- ]time code)\b", 3.0),),
    "ACCOUNT/Permissions": ((r"\b(permissions?|roles?|admin rights|not allowed to)\b", 2.0),),
    "ACCOUNT/Profile": ((r"\b(profile|display name|my email address|avatar)\b", 2.0),),
    "TECHNICAL/API": (
        (r"\b(api|rest|endpoint|oauth|bearer|token)\b", 1.5),
        (r"\b(401|403|429|400|500)\b", 2.0),
        (r"\b(rate limit|unauthori[sz]ed|malformed)\b", 2.0),
    ),
    "TECHNICAL/Integration": (
        (r"\b(integration|webhook|zapier|slack app|sync(ing)? with|connector)\b", 2.0),
    ),
    "TECHNICAL/Performance": ((r"\b(slow|timeout|timing out|latency|lag(gy)?)\b", 2.0),),
    "TECHNICAL/Bug": ((r"\b(bug|crash(es|ed)?|broken|error message|not working)\b", 1.5),),
    "TECHNICAL/Configuration": ((r"\b(configure|configuration|settings?|set ?up)\b", 1.5),),
    "BILLING/Invoice": ((r"\b(invoices?|receipt|billing statement)\b", 3.0),),
    "BILLING/Payment": ((r"\b(payment|credit card|card declined|pay)\b", 2.0),),
    "BILLING/Subscription": ((r"\b(subscription|plan|upgrade|downgrade|cancel my)\b", 2.0),),
    "BILLING/Renewal": ((r"\b(renewal|renew|auto-?renew)\b", 3.0),),
    "BILLING/Refund": ((r"\b(refund|money back|charged twice|overcharged)\b", 3.0),),
    "PRODUCT/Features": (
        (r"\b(feature|does it support|is there a way)\b", 1.5),
        (r"\bhow do i\b", 0.5),
    ),
    "PRODUCT/Training": ((r"\b(training|tutorial|onboarding|webinar)\b", 2.0),),
    "PRODUCT/Documentation": ((r"\b(docs|documentation|guide|manual)\b", 2.0),),
    "PRODUCT/Best Practices": ((r"\b(best practices?|recommend(ed)?|should i)\b", 1.5),),
    "DATA/Import": ((r"\b(import|upload (a )?csv|bulk load)\b", 3.0),),
    "DATA/Export": ((r"\b(export|download (my|the|all) data|extract)\b", 3.0),),
    "DATA/Reports": ((r"\b(reports?|dashboard)\b", 2.5),),
    "DATA/Analytics": ((r"\b(analytics|metrics|kpis?)\b", 2.0),),
    "DATA/Quality": ((r"\b(duplicates?|data quality|missing records|dedupe)\b", 2.5),),
    "human_request": (
        (r"\b(speak|talk|chat)\b.{0,20}\b(manager|human|person|agent|someone|supervisor)\b", 5.0),
        (r"\b(real person|human agent|live agent|representative)\b", 4.0),
    ),
    "out_of_scope": ((r"\b(weather|recipe|joke|poem|football|movie|stock tips?|lottery)\b", 3.0),),
}

NEGATIVE = (
    (r"\b(unacceptable|ridiculous|terrible|awful|worst|useless|furious|angry|outrageous)\b", 0.45),
    (r"\b(frustrat\w*|annoy\w*|disappoint\w*|fed up|sick of|waste of time)\b", 0.4),
    (r"\b(for hours|for days|again and again|still not|still broken|nothing works)\b", 0.3),
    (r"\b(now|asap|immediately)!", 0.25),
    (r"\b(not working|doesn'?t work|can'?t|cannot|error|problem|issue)\b", 0.1),
)
POSITIVE = (
    (r"\b(thanks?|thank you|great|awesome|perfect|excellent|appreciate|helpful)\b", 0.4),
    (r"\b(love|works now|solved|resolved)\b", 0.4),
)
FLAG_RULES: dict[str, str] = {
    "sql_injection": (
        r"('\s*;\s*(drop|delete|insert|update)\b|\bunion\s+select\b"
        r"|\bor\s+1\s*=\s*1\b|--\s*$)"
    ),
    "xss": r"(<\s*script\b|javascript:|onerror\s*=)",
    "prompt_injection": (
        r"\b(ignore|disregard|forget)\b.{0,30}\b(instructions|rules|prompt)\b"
        r"|\b(you are now|system prompt|developer mode)\b"
    ),
}
LANGUAGE_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the i my is to and a you it not have with can how what please",
        "es": "el la mi es y de que no con para por favor cómo tengo",
        "fr": "le la mon est et de que ne pas avec pour je vous comment",
        "de": "der die das mein ist und nicht mit für ich sie wie bitte",
        "pt": "o a meu é e de que não com para por favor como eu",
    }.items()
}
_WORD = re.compile(r"[\wáéíóúñçàèâêôüöäß']+", re.IGNORECASE)


def _compile(rules: Sequence[tuple[str, float]]) -> list[tuple[re.Pattern[str], float]]:
    return [(re.compile(p, re.IGNORECASE | re.DOTALL), w) for p, w in rules]


class BaselineLexicalModel:
    """Rule-based implementation of :class:`processors.ports.IntentSentimentModel`."""

    def __init__(self) -> None:
        self._intents = {label: _compile(rules) for label, rules in INTENT_RULES.items()}
        self._negative = _compile(NEGATIVE)
        self._positive = _compile(POSITIVE)
        self._flags = {
            k: re.compile(p, re.IGNORECASE | re.MULTILINE) for k, p in FLAG_RULES.items()
        }
        blob = json.dumps(
            [INTENT_RULES, NEGATIVE, POSITIVE, FLAG_RULES, sorted(LANGUAGE_WORDS)],
            sort_keys=True,
        ).encode()
        self._info = ModelInfo(
            name=MODEL_NAME, version=MODEL_VERSION, sha256=hashlib.sha256(blob).hexdigest()
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [self._predict_one(t) for t in texts]

    def _predict_one(self, text: str) -> Prediction:
        raw: dict[str, float] = {}
        for label, rules in self._intents.items():
            weight = sum(w for rx, w in rules if rx.search(text))
            if weight:
                raw[label] = weight
        total = sum(raw.values()) + PRIOR
        intents = tuple(
            IntentScore(label=label, score=round(w / total, 6))
            for label, w in sorted(raw.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        flags = self.risk_flags(text)
        if "human_request" in raw:
            flags = tuple(sorted({*flags, "human_request"}))
        return Prediction(
            intents=intents,
            sentiment=self._sentiment(text),
            language=detect_language(text),
            flags=flags,
        )

    def risk_flags(self, text: str) -> tuple[str, ...]:
        """Rule findings (sql_injection, prompt_injection, ...), sorted."""
        return tuple(sorted(name for name, rx in self._flags.items() if rx.search(text)))

    def _sentiment(self, text: str) -> Sentiment:
        neg = sum(w * len(rx.findall(text)) for rx, w in self._negative)
        pos = sum(w * len(rx.findall(text)) for rx, w in self._positive)
        letters = [c for c in text if c.isalpha()]
        caps = sum(c.isupper() for c in letters) / len(letters) if len(letters) >= 8 else 0.0
        shouting = 0.3 if caps > 0.6 else 0.0
        bangs = min(text.count("!"), 3) * 0.1
        frustration = min(1.0, neg + shouting + bangs * (1.0 if neg else 0.5))
        valence = math.tanh(2.0 * (pos - neg - shouting))
        label = "negative" if valence < -0.2 else "positive" if valence > 0.2 else "neutral"
        return Sentiment(label=label, valence=round(valence, 6), frustration=round(frustration, 6))


def detect_language(text: str) -> str:
    """Most likely language by stop-word counts; ``und`` when nothing matches."""
    words = [w.lower() for w in _WORD.findall(text[:2000])]
    if not words:
        return "und"
    counts = {lang: sum(w in vocab for w in words) for lang, vocab in LANGUAGE_WORDS.items()}
    best = max(counts, key=lambda k: (counts[k], k == "en"))
    return best if counts[best] else "und"
