"""The grounding check: is every claim of an answer supported by the passages it cites?

Our own check, never the LLM's word. An answer is split into sentences (list items and
steps count as sentences). A sentence *makes a claim* when it states a hard fact
(number, duration, price, error code, header, URL, path, menu hop, quoted or code text)
or has at least three content words beyond courtesy ("I hope this helps"). Every claim
must cite at least one passage of the question, by passage id (``[kb-x@v2#1]``) or
article id; each hard fact must appear in the cited passages' text; and the share of
the sentence's content words found there must reach ``min_support``. Lines of fenced
code blocks must appear verbatim in some passage. One failing
sentence rejects the whole answer, so the chain moves on to its next link.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.responder.text import (
    COURTESY,
    citation_ids,
    code_blocks,
    content_words,
    normalize,
    numbers_as_digits,
    split_sentences,
    stem,
    strip_citations,
)
from agent.responder.types import Passage

_COURTESY_STEMS = frozenset(stem(w) for w in COURTESY)
_URL = re.compile(r"https?://[^\s)\]>\"'`*]+|\b[\w.+-]+@[\w-]+\.[\w.-]*\w")
_PATH = re.compile(r"(?<![\w/.:])/(?:[\w{}.-]+/)*[\w{}.-]*[a-z][\w{}.-]*", re.IGNORECASE)
_CODE = re.compile(r"`([^`\n]+)`")
_QUOTED = re.compile(r"\"([^\"\n]{4,}?)\"|“([^”\n]{4,}?)”")
_HEADER = re.compile(r"\b(?:X-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*|[A-Z][a-z]+(?:-[A-Z][a-z]+)+)\b")
_ERROR_CODE = re.compile(
    r"\b(?:[A-Z][A-Z0-9]*_[A-Z0-9_]+|[a-z]+(?:_[a-z0-9]+)+|[A-Z]{1,5}-?\d{2,})\b"
)
_UNIT = r"(ms|milliseconds?|secs?|seconds?|mins?|minutes?|hrs?|hours?|days?|weeks?|months?|years?)"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(?:-\s*)?" + _UNIT + r"\b", re.IGNORECASE)
_PRICE = re.compile(
    r"([$€£])\s?(\d[\d,]*(?:\.\d+)?)|(\d[\d,]*(?:\.\d+)?)\s?(USD|EUR|GBP)\b"
    r"|\b(USD|EUR|GBP)\s?(\d[\d,]*(?:\.\d+)?)"
)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?!\w)")
_MENU_HOP = re.compile(r"([\w&]+)\s*>\s*([\w&]+)")
_UNITS = {"ms": "millisecond", "sec": "second", "min": "minute", "hr": "hour"}
_CURRENCY = {"$": "USD", "€": "EUR", "£": "GBP"}


@dataclass(frozen=True, slots=True)
class GroundingPolicy:
    """``min_support``: share of a claim's content words found in its cited passages."""

    min_support: float = 0.55
    min_claims: int = 1


@dataclass(frozen=True, slots=True)
class GroundingVerdict:
    ok: bool
    citations: tuple[str, ...]
    problems: tuple[str, ...]
    claims: int

    @property
    def reason(self) -> str:
        return "; ".join(self.problems[:3]) or "grounded"


@dataclass(frozen=True, slots=True)
class Fact:
    kind: str
    value: str


class Evidence:
    """The question's passages, addressable by passage id or article id."""

    def __init__(self, passages: Iterable[Passage]) -> None:
        self.passages = {p.id: p for p in passages}
        self._texts = {pid: _support_text(p) for pid, p in self.passages.items()}
        self._vocab = {pid: frozenset(content_words(t)) for pid, t in self._texts.items()}

    def resolve(self, cited: str) -> tuple[str, ...]:
        """Passage ids a citation stands for; () when it names nothing we gave."""
        if cited in self.passages:
            return (cited,)
        return tuple(pid for pid, p in self.passages.items() if p.article_id == cited)

    def text(self, ids: Iterable[str]) -> str:
        return "\n".join(self._texts[i] for i in ids)

    def vocabulary(self, ids: Iterable[str]) -> frozenset[str]:
        return frozenset().union(*(self._vocab[i] for i in ids))


def check_answer(
    text: str, passages: Sequence[Passage], policy: GroundingPolicy = GroundingPolicy()
) -> GroundingVerdict:
    """Check every sentence of ``text`` against ``passages``."""
    evidence = Evidence(passages)
    text = text.replace("&lt;", "<")
    problems: list[str] = []
    cited: list[str] = []
    claims = 0
    everything = _canonical(evidence.text(evidence.passages)).text
    for line in code_blocks(text):
        if _squash(line) not in everything:
            problems.append(f"code line {_snippet(line)} is in no passage")
    for n, sentence in enumerate(split_sentences(text), start=1):
        is_claim, ids, problem = check_sentence(sentence, evidence, policy)
        claims += is_claim
        cited.extend(i for i in ids if i not in cited)
        if problem:
            problems.append(f"sentence {n} {_snippet(sentence)}: {problem}")
    if claims < policy.min_claims and not problems:
        problems.append("no grounded claim in the answer")
    return GroundingVerdict(not problems, tuple(cited), tuple(problems), claims)


def check_sentence(
    sentence: str, evidence: Evidence, policy: GroundingPolicy = GroundingPolicy()
) -> tuple[bool, tuple[str, ...], str | None]:
    """``(makes_a_claim, cited passage ids, problem or None)`` for one sentence."""
    raw_ids = citation_ids(sentence)
    body = strip_citations(sentence).strip()
    facts = hard_facts(body)
    words = content_words(_URL.sub(" ", body))
    is_claim = bool(facts or raw_ids) or (
        len([w for w in words if w not in _COURTESY_STEMS]) >= 3 and not _is_heading(body)
    )
    unknown = [c for c in raw_ids if not evidence.resolve(c)]
    if unknown:
        return is_claim, (), f"cites unknown passage {', '.join(unknown)}"
    ids = tuple(dict.fromkeys(pid for c in raw_ids for pid in evidence.resolve(c)))
    if not is_claim:
        return False, ids, None
    if not ids:
        return True, ids, "claim without a citation"
    support = _canonical(evidence.text(ids))
    missing = [f"{f.kind} {f.value!r}" for f in facts if not _supported(f, support)]
    if missing:
        return True, ids, f"{', '.join(missing[:3])} not in the cited passages"
    vocabulary = evidence.vocabulary(ids)
    if words:
        share = sum(w in vocabulary for w in words) / len(words)
        if share < policy.min_support:
            return True, ids, f"content support {share:.2f} < {policy.min_support}"
    return True, ids, None


def hard_facts(sentence: str) -> list[Fact]:
    """The checkable specifics of a sentence (citations already removed)."""
    text = _canonical_case(strip_citations(sentence))
    facts: list[Fact] = []
    for m in _URL.finditer(text):
        facts.append(Fact("url", m.group(0).rstrip(".,;:").lower()))
    text = _URL.sub(" ", text)
    for m in _CODE.finditer(text):
        facts.append(Fact("code", _squash(m.group(1))))
    for m in _QUOTED.finditer(text):
        quoted = _squash(m.group(1) or m.group(2))
        if len(quoted.split()) >= 2:
            facts.append(Fact("quote", quoted))
    facts += [Fact("path", m.group(0).lower()) for m in _PATH.finditer(text)]
    facts += [Fact("header", m.group(0).lower()) for m in _HEADER.finditer(text)]
    facts += [Fact("error code", m.group(0).lower()) for m in _ERROR_CODE.finditer(text)]
    for m in _MENU_HOP.finditer(text.replace("*", "")):
        facts.append(Fact("menu path", f"{m.group(1)} > {m.group(2)}".lower()))
    facts += [Fact("duration", d) for d in _durations(text)]
    facts += [Fact("price", p) for p in _prices(text)]
    facts += [Fact("number", n) for n in _numbers(text)]
    return list(dict.fromkeys(facts))


@dataclass(frozen=True, slots=True)
class _Support:
    text: str
    numbers: frozenset[str]
    durations: frozenset[str]
    prices: frozenset[str]


@functools.lru_cache(maxsize=1024)  # passages repeat: the KB is small, answers cite a few
def _canonical(text: str) -> _Support:
    text = _canonical_case(text)
    return _Support(
        text=_squash(text.replace("*", "")),
        numbers=frozenset(_numbers(_URL.sub(" ", text))),
        durations=frozenset(_durations(text)),
        prices=frozenset(_prices(text)),
    )


def _supported(fact: Fact, support: _Support) -> bool:
    if fact.kind == "number":
        return fact.value in support.numbers
    if fact.kind == "duration":
        return fact.value in support.durations
    if fact.kind == "price":
        return fact.value in support.prices
    if fact.kind in ("error code", "header"):
        return re.search(rf"(?<![\w-]){re.escape(fact.value)}(?![\w-])", support.text) is not None
    return fact.value in support.text


def _support_text(passage: Passage) -> str:
    return f"{passage.title}\n{passage.text}"


def _canonical_case(text: str) -> str:
    return numbers_as_digits(normalize(text))


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\s*>\s*", " > ", text)).strip().lower()


def _numbers(text: str) -> list[str]:
    out = []
    for m in _NUMBER.finditer(text):
        n = m.group(0).replace(",", "")
        out.append(n.rstrip("0").rstrip(".") if "." in n else n)
    return out


def _durations(text: str) -> list[str]:
    out = []
    for m in _DURATION.finditer(text):
        unit = m.group(2).lower().rstrip("s") if m.group(2).lower() != "ms" else "ms"
        out.append(f"{float(m.group(1)):g} {_UNITS.get(unit, unit)}")
    return out


def _prices(text: str) -> list[str]:
    out = []
    for m in _PRICE.finditer(text):
        if m.group(1):
            currency, amount = _CURRENCY[m.group(1)], m.group(2)
        elif m.group(3):
            currency, amount = m.group(4).upper(), m.group(3)
        else:
            currency, amount = m.group(5).upper(), m.group(6)
        out.append(f"{currency} {float(amount.replace(',', '')):.2f}")
    return out


def _is_heading(body: str) -> bool:
    stripped = body.strip()
    return stripped.startswith("#") or (stripped.endswith(":") and len(stripped.split()) <= 12)


def _snippet(sentence: str) -> str:
    return repr(sentence if len(sentence) <= 60 else sentence[:57] + "...")
