"""Input-attack findings read from the message text: prompt and SQL injection, XSS. Pure.

The model adapters report the flags their own rules find; the enrich step adds these so
that every model (ONNX, Triton, the lexical baseline) flags the same attacks, and the
finding is recorded in ``MessageEnriched.flags`` (replay reads it, never recomputes it).
The patterns look for the shape of an attack, not for SQL words: "drop the old table
from the report" or "select all contacts" are not flagged.
"""

from __future__ import annotations

import re

#: Only the first this many characters are read (bounded time on long inputs).
MAX_CHARS = 10_000

RULES: dict[str, tuple[str, ...]] = {
    "prompt_injection": (
        # "ignore / disregard / forget (all) (your) previous instructions"
        r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instructions?|rules|prompts?"
        r"|directions|guidelines|restrictions|polic(y|ies))\b",
        r"\b(system prompt|developer mode|admin mode|god mode|jailbreak|no restrictions"
        r"|without (any )?restrictions|you are now|from now on you|act as (an?|the) )",
        r"\byou are (dan|an? ai with no)\b|\bdo anything now\b",
        r"^\s*\[?(system|assistant|developer)\]?\s*:|#{2,}\s*(new )?instructions",
        r"\b(reveal|print|show|repeat|leak)\b.{0,30}\b(system prompt|instructions|api keys?"
        r"|secrets?|internal (rules|prompt))\b",
        # the same in German, Spanish, French, Portuguese
        r"\b(ignoriere|vergiss)\b.{0,40}\b(anweisungen|regeln)\b",
        r"\b(ignora|olvida)\b.{0,40}\b(instrucciones|reglas)\b",
        r"\b(ignore[zs]?|oublie[zs]?)\b.{0,40}\b(instructions|consignes|règles)\b",
        r"\b(ignore|esque[çc]a)\b.{0,40}\b(instru[çc][õo]es|regras)\b",
    ),
    "sql_injection": (
        r"['\"`]\s*\)*\s*;\s*(drop|delete|insert|update|truncate|alter|exec)\b",
        r"\bunion\s+(all\s+)?select\b",
        r"['\"]\s*or\s+['\"]?\d+['\"]?\s*=\s*['\"]?\d+|\bor\s+1\s*=\s*1\b",
        r"\b(drop|truncate)\s+table\s+\w+\s*;?\s*--",
        r"\bselect\s+\*\s+from\s+\w+\s*;|\bdelete\s+from\s+\w+\s+where\b",
        r";\s*--\s*$",
    ),
    "xss": (r"<\s*script\b|javascript:|\bon(error|load|click)\s*=",),
}

_COMPILED = {
    name: tuple(re.compile(p, re.IGNORECASE | re.MULTILINE | re.DOTALL) for p in patterns)
    for name, patterns in RULES.items()
}


def risk_flags(text: str) -> tuple[str, ...]:
    """The attacks ``text`` contains, sorted (empty for an ordinary message)."""
    head = text[:MAX_CHARS]
    return tuple(sorted(n for n, rxs in _COMPILED.items() if any(rx.search(head) for rx in rxs)))
