"""The extractive link: an answer made of the passages' own sentences and steps.

Needs no model and cannot hallucinate: units (sentences, list items, steps) are kept
verbatim and cited. Units are ranked by content-word overlap with the question and by
their passage's retrieval score; a matched numbered step brings its whole procedure.
When no passage is relevant enough (``min_confidence``), it declines, and the chain
escalates.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from agent.responder.text import content_words, normalize, split_sentences, strip_list_marker
from agent.responder.types import Passage, Question

_STEP = re.compile(r"^\s*\d{1,2}[.)]\s+")
_BULLET = re.compile(r"^\s*[-*+•]\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z*\"“(])")
_PROCEDURAL = re.compile(
    r"\bhow\b|\bwhat (?:do|should|can) i\b|\bsteps?\b|\bfix\b|\bresolve\b|\bhandle\b"
    r"|\bunlock\b|\bget back\b|\bcan'?t\b|\bunable\b",
    re.IGNORECASE,
)
#: Words that frame a question rather than say what it is about.
# fmt: off
_FRAMING = frozenset({
    "tell", "want", "know", "show", "explain", "wonder", "ask", "question", "problem",
    "issue", "hi", "hello", "thank", "thanks", "help", "please", "could", "would", "anyone",
    "someone",
})
# fmt: on
_INTRO = {"basic": "Here's what our help center says:", "technical": "From the documentation:"}


@dataclass(frozen=True, slots=True)
class Draft:
    text: str
    citations: tuple[str, ...]
    confidence: float


@dataclass(frozen=True, slots=True)
class _Unit:
    passage: Passage
    rank: int
    position: int
    text: str
    kind: str  # "step", "bullet" or "sentence"
    run: int  # numbered list this step belongs to, -1 otherwise
    score: float


@dataclass(frozen=True, slots=True)
class ExtractiveResponder:
    """``min_confidence``: least retrieval score of a passage worth answering from;
    ``min_coverage``: least share of the question's content words a passage must hold."""

    min_confidence: float = 0.35
    min_coverage: float = 0.2
    max_units: int = 4
    max_steps: int = 8

    def compose(self, question: Question, query: str) -> Draft | str:
        """A cited answer, or why there is none."""
        wanted = set(content_words(query, _FRAMING)) or set(
            content_words(question.intent.replace("_", " "), _FRAMING)
        )
        if not wanted:
            return "nothing answerable in the message"
        relevant, best_coverage, best_score = [], 0.0, 0.0
        weight = {w: 2.0 if any(c.isdigit() or c == "_" for c in w) else 1.0 for w in wanted}
        for p in question.passages:
            found = wanted & set(content_words(f"{p.title}\n{p.text}"))
            coverage = sum(weight[w] for w in found) / sum(weight.values())
            best_coverage, best_score = max(best_coverage, coverage), max(best_score, p.score)
            if coverage >= self.min_coverage and p.score >= self.min_confidence:
                relevant.append((coverage + 0.5 * p.score, coverage, p))
        if not relevant:
            return (
                f"no passage relevant enough (best coverage {best_coverage:.2f},"
                f" best score {best_score:.2f}; need {self.min_coverage} and"
                f" {self.min_confidence})"
            )
        relevant.sort(key=lambda r: -r[0])
        units = [u for rank, (_, _, p) in enumerate(relevant[:2]) for u in _units(p, rank, wanted)]
        chosen = self._choose(units, procedural=bool(_PROCEDURAL.search(query)))
        if not chosen:
            return "no sentence of the passages matches the question"
        return Draft(
            text=_render(chosen, question.technical_level),
            citations=tuple(dict.fromkeys(u.passage.id for u in chosen)),
            confidence=relevant[0][2].score,
        )

    def _choose(self, units: list[_Unit], *, procedural: bool) -> list[_Unit]:
        matching = sorted((u for u in units if u.score > 0), key=lambda u: -u.score)
        if not matching:
            return []
        top = matching[0]
        step = next((u for u in matching if u.kind == "step" and u.rank == 0), None)
        if procedural and step is not None:
            top = step
        if top.kind == "step":
            steps = [u for u in units if u.run == top.run and u.passage.id == top.passage.id]
            lead = [
                u for u in matching[1:] if u.kind == "sentence" and u.position < steps[0].position
            ]
            return lead[:1] + steps[: self.max_steps]
        picked = [u for u in matching if u.rank == 0 or u.score >= 0.6 * top.score]
        picked = picked[: self.max_units]
        return sorted(picked, key=lambda u: (u.rank, u.position))


def _units(passage: Passage, rank: int, wanted: set[str]) -> list[_Unit]:
    out: list[_Unit] = []
    in_fence, run, previous_step = False, -1, False
    for line in normalize(passage.text).split("\n"):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence or not stripped or stripped.startswith(("#", "|")) or stripped.endswith(":"):
            previous_step = False
            continue
        if _STEP.match(stripped):
            run = run if previous_step else len(out)
            pieces, kind, previous_step = [strip_list_marker(stripped)], "step", True
        elif _BULLET.match(stripped):
            pieces, kind, previous_step = [strip_list_marker(stripped)], "bullet", False
        else:
            pieces, kind, previous_step = _SENTENCE_END.split(stripped), "sentence", False
        for piece in pieces:
            words = set(content_words(piece))
            if len(words) < 2:
                continue
            overlap = len(words & wanted)
            score = overlap / math.sqrt(len(words) * len(wanted)) + 0.1 * passage.score
            out.append(
                _Unit(
                    passage,
                    rank,
                    len(out),
                    piece,
                    kind,
                    run if kind == "step" else -1,
                    score if overlap else 0.0,
                )
            )
    return out


def _render(units: list[_Unit], level: str) -> str:
    lines = [_INTRO.get(level, _INTRO["basic"])]
    number = 0
    for u in units:
        cited = " ".join(f"{s} [{u.passage.id}]" for s in split_sentences(u.text))
        if u.kind == "step" or (level == "basic" and len(units) > 1):
            number += 1
            lines.append(f"{number}. {cited}")
        else:
            lines.append(cited)
    return "\n".join(lines)
