"""Prompt-injection screening: of the customer's text, of retrieved passages, and of
the LLM's reply.

Detection is by rules on normalised text (NFKC, zero-width characters removed), also
applied to base64 blobs after decoding. A detection never changes the system prompt: it
flags the answer, strips the injected spans from the text used for extractive relevance,
drops injected sentences from passages, and arms the echo check that rejects a reply
carrying the system prompt's canary, a quote of the system prompt, or the text the
attacker asked to have repeated.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agent.responder.text import normalize
from agent.responder.types import Passage

_I = re.IGNORECASE | re.MULTILINE
_VERB = r"\b(?:ignore|disregard|forget|override|bypass|overrule|neglect)\b"
_PRIOR = r"(?:previous|prior|above|earlier|preceding|all|any|your|system|original|initial|these)"
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "ignore_instructions",
        re.compile(
            _VERB + r"[^.!?\n]{0,40}?\b(?:instructions?|prompts?|directions|guidelines|"
            r"guardrails|programming|system message)\b"
            rf"|{_VERB}\s+(?:\w+\s+){{0,2}}?{_PRIOR}\b[^.!?\n]{{0,25}}?\b(?:rules|context|"
            r"constraints|polic(?:y|ies)|messages?)\b"
            rf"|{_VERB}\s+(?:everything|all)\s+(?:\w+\s+){{0,3}}?(?:above|before|previously)",
            _I,
        ),
    ),
    (
        "role_override",
        re.compile(
            r"\byou are now\b|\bfrom now on,? you\b|\byou(?:'re| are) no longer\b"
            r"|\bact as (?:an? |the |my )?(?:developer|admin(?:istrator)?|system|root|superuser"
            r"|dan|jailbroken|unrestricted|unfiltered|different (?:ai|assistant|model))"
            r"|\bpretend (?:to be|you are|that you)|\brole-?\s?play (?:as|that)"
            r"|\b(?:developer|god|debug|admin|dan|sudo) mode\b|\bjailbr(?:eak|oken)\b"
            r"|\bdo anything now\b|\bnew (?:instructions|rules|persona|role)\s*:",
            _I,
        ),
    ),
    (
        "system_prompt_request",
        re.compile(
            r"\bsystem\s+prompt\b|\b(?:initial|original|hidden|secret|internal)\s+"
            r"(?:prompt|instructions)\b"
            r"|\b(?:reveal|show|print|repeat|output|display|tell|give|leak|dump|share|recite"
            r"|what are)\b[^.?!\n]{0,12}\byour\s+(?:instructions|rules|prompt|guidelines"
            r"|configuration)\b(?!\s+(?:for|on|about|to|regarding|of)\b)"
            r"|\b(?:repeat|print|output|reproduce|recite)\b[^.?!\n]{0,20}\b(?:everything|all"
            r"|the text|the words|text)\b[^.?!\n]{0,20}\b(?:above|before|preceding|prior)\b",
            _I,
        ),
    ),
    (
        "fake_markup",
        re.compile(
            r"<\|?\s*(?:system|im_start|im_end|endoftext|assistant)\s*\|?>|\[/?(?:inst|sys)\]"
            r"|<<\s*/?sys\s*>>|</?\s*(?:system|instructions?|customer_message|passages)\s*>"
            r"|^\s*(?:system|assistant|developer)\s*:|#{2,}\s*(?:system|new instructions?)\b"
            r"|<!--",
            _I,
        ),
    ),
    (
        "decode_and_follow",
        re.compile(
            r"\bdecode\b[^.!?\n]{0,40}\b(?:and|then)\s+(?:follow|execute|run|do|obey)\b", _I
        ),
    ),
)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_PAYLOAD = re.compile(
    r"\b(?:say|repeat|print|output|respond with|reply with|answer with|write|type"
    r"|(?:end|start|begin) (?:your|every|each) (?:answer|reply|response) with)\s*"
    r"(?:only|exactly|verbatim|just)?\s*(?:the (?:words?|phrase|text|following))?\s*"
    r"(?:[\"'\u201c\u2018`]([^\"'\u201d\u2019`\n]{3,120})[\"'\u201d\u2019`]|:\s*([^\n.!?\"]{3,80}))"
    r"|\b(?:exactly|verbatim)\s*:?\s*([^\n.!?\"]{3,80})",
    re.IGNORECASE,
)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@dataclass(frozen=True, slots=True)
class InjectionReport:
    """``rules`` that fired; ``payloads`` the attacker wants echoed; ``clean_text`` the
    text with the injected spans cut out (what is left of the legitimate question)."""

    rules: tuple[str, ...]
    payloads: tuple[str, ...]
    clean_text: str

    @property
    def detected(self) -> bool:
        return bool(self.rules)


def detect_injection(text: str) -> InjectionReport:
    """Screen one text (a customer message or a passage)."""
    norm = normalize(text)
    rules = [name for name, rule in RULES if rule.search(norm)]
    for blob in _BASE64.findall(norm):
        decoded = _decode(blob)
        if decoded and any(rule.search(decoded) for _, rule in RULES):
            rules.append("encoded_payload")
            break
    if not rules:
        return InjectionReport((), (), norm.strip())
    payloads = []
    for m in _PAYLOAD.finditer(norm):
        payload = (m.group(1) or m.group(2) or m.group(3) or "").strip()
        if len(payload) >= 3:
            payloads.append(payload)
    clean = norm
    for _, rule in RULES:
        clean = rule.sub(" ", clean)
    clean = _PAYLOAD.sub(" ", _BASE64.sub(" ", clean))
    clean = re.sub(r"^[\s,;:.-]*(?:and|then|also)?\b", "", re.sub(r"\s+", " ", clean)).strip()
    return InjectionReport(tuple(dict.fromkeys(rules)), tuple(payloads), clean)


def screen_passages(passages: Sequence[Passage]) -> tuple[tuple[Passage, ...], tuple[str, ...]]:
    """Passages with HTML comments and injected sentences removed (an emptied passage is
    dropped), and the ids of those that carried an injection."""
    kept: list[Passage] = []
    flagged: list[str] = []
    for passage in passages:
        text, poisoned = _screen_passage_text(passage.text)
        if poisoned:
            flagged.append(passage.id)
        if text.strip():
            kept.append(passage if text == passage.text else replace(passage, text=text))
    return tuple(kept), tuple(flagged)


@functools.lru_cache(maxsize=1024)  # the same passages come back for many questions
def _screen_passage_text(original: str) -> tuple[str, bool]:
    """``(text without comments and injected sentences, whether it carried any)``."""
    text = _COMMENT.sub(" ", original)
    if text != original or detect_injection(text).detected:
        return _drop_injected_sentences(text), True
    return text, False


def echo_reason(
    answer: str, *, canary: str, system_prompt: str, payloads: Sequence[str] = ()
) -> str | None:
    """Why ``answer`` must be rejected as following an injection, or None."""
    flat = _flat(answer)
    if canary and _flat(canary) in flat:
        return "echoes the system prompt canary"
    prompt_words = _flat(system_prompt).split()
    answer_text = f" {flat} "
    for i in range(len(prompt_words) - 7):
        if f" {' '.join(prompt_words[i : i + 8])} " in answer_text:
            return "quotes the system prompt"
    for payload in payloads:
        if _flat(payload) and _flat(payload) in flat:
            return f"repeats the injected text {payload[:40]!r}"
    return None


def _drop_injected_sentences(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        if not detect_injection(line).detected:
            lines.append(line)
            continue
        kept = [s for s in re.split(r"(?<=[.!?])\s+", line) if not detect_injection(s).detected]
        if kept:
            lines.append(" ".join(kept))
    return "\n".join(lines)


def _decode(blob: str) -> str | None:
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None
    text = raw.decode("utf-8", errors="replace")
    printable = sum(c.isprintable() or c.isspace() for c in text)
    return text if text and printable / len(text) > 0.9 else None


def _flat(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", normalize(text).lower()))
