"""Data in and out of the responder: plain frozen values, recorded in events as dicts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TechnicalLevel = Literal["basic", "technical"]


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved knowledge-base chunk. ``id`` is what answers cite, e.g.
    ``kb-api-token-expired-401@v2#1`` (article id, version, chunk number)."""

    id: str
    article_id: str
    title: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class Question:
    """What the decider's I/O shell asks: the customer's text plus the retrieval result."""

    text: str
    tenant_id: str
    intent: str
    passages: tuple[Passage, ...]
    history: tuple[str, ...] = ()
    technical_level: TechnicalLevel = "basic"
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply and how it was reached.

    ``link`` names what produced it (``llm:primary``, ``llm:secondary``, ``extractive``,
    ``escalate``); ``fallbacks`` are the links passed over, each ``"name: reason"``;
    ``grounded`` is true when every claim passed the grounding check; ``usage`` sums the
    tokens (and cost) of every LLM call made for this answer, rejected ones included.
    """

    text: str
    citations: tuple[str, ...]
    link: str
    grounded: bool
    fallbacks: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    usage: dict[str, float] = field(default_factory=dict)

    @property
    def escalated(self) -> bool:
        return self.link == "escalate"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record for the event that carries this answer."""
        return asdict(self)
