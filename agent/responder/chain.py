"""The responder: LLM primary -> LLM secondary -> extractive -> escalate.

Each LLM link has its own timeout, circuit breaker and per-tenant token budget. A link
is passed over when its circuit is open, its budget is spent, it fails or times out, it
declines (``NO_ANSWER``), its reply echoes the system prompt or an injected text, or the
grounding check rejects the reply; every pass-over is recorded in ``Answer.fallbacks`` as
``"name: reason"``. Tokens stream to ``on_token`` one checked sentence at a time; if a
link is rejected after some of its text went out, ``on_retract(reason)`` tells the
client to discard it before the next link streams.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.responder.budget import TokenBudget
from agent.responder.extractive import Draft, ExtractiveResponder
from agent.responder.grounding import Evidence, GroundingPolicy, check_answer, check_sentence
from agent.responder.injection import (
    InjectionReport,
    detect_injection,
    echo_reason,
    screen_passages,
)
from agent.responder.ports import LLM, LLMError, LLMReply, LLMTimeout, Message, TokenCallback
from agent.responder.prompt import CANARY, NO_ANSWER, SYSTEM_PROMPT, build_messages
from agent.responder.text import split_sentences
from agent.responder.types import Answer, Question
from models.chain import CircuitBreaker

#: ``on_fallback(from_link, to_link, reason)``: hook for metrics.
FallbackHook = Callable[[str, str, str], None]
RetractCallback = Callable[[str], None]

EXTRACTIVE, ESCALATE = "extractive", "escalate"
_ESCALATION = {
    "basic": (
        "I couldn't find a reliable answer to this in our help center, so I'm passing your"
        " question to a support specialist who will get back to you."
    ),
    "technical": (
        "No documented answer matches this question closely enough; I'm escalating it to a"
        " support engineer."
    ),
}
_BOUNDARY = re.compile(r"(?<=[.!?:])[ \t]+(?=[^\s\[])|\n+(?=[ \t]*[^\s\[])")


@dataclass
class LLMLink:
    """One LLM in the chain; ``budget`` None = unlimited; costs are per 1,000 tokens."""

    name: str
    llm: LLM
    timeout_s: float = 10.0
    breaker: CircuitBreaker = dataclasses.field(default_factory=CircuitBreaker)
    budget: TokenBudget | None = None
    max_reply_tokens: int = 600
    cost_prompt_1k: float = 0.0
    cost_completion_1k: float = 0.0


class Rejected(Exception):
    """A reply (or the part streamed so far) failed a check; not the LLM's failure."""


class Responder:
    """Answers one :class:`Question`; call from the I/O shell, record the :class:`Answer`."""

    def __init__(
        self,
        links: Sequence[LLMLink] = (),
        *,
        extractive: ExtractiveResponder | None = None,
        policy: GroundingPolicy | None = None,
        on_fallback: FallbackHook | None = None,
    ) -> None:
        self.links = list(links)
        self.extractive = extractive or ExtractiveResponder()
        self.policy = policy or GroundingPolicy()
        self._on_fallback = on_fallback

    def answer(
        self,
        question: Question,
        *,
        on_token: TokenCallback | None = None,
        on_retract: RetractCallback | None = None,
    ) -> Answer:
        report = detect_injection(question.text)
        passages, poisoned = screen_passages(question.passages)
        question = dataclasses.replace(question, passages=passages)
        turn = _Turn(question, report, _flags(question.flags, report, poisoned))
        messages = build_messages(question, injection_detected=report.detected)
        names = [link.name for link in self.links] + [EXTRACTIVE, ESCALATE]
        for i, link in enumerate(self.links):
            answer = self._ask(link, turn, messages, on_token, on_retract)
            if isinstance(answer, Answer):
                return answer
            self._fall(turn, link.name, names[i + 1], answer)
        draft = self.extractive.compose(question, report.clean_text)
        if isinstance(draft, Draft):
            verdict = check_answer(draft.text, passages, self.policy)
            if verdict.ok:
                if on_token is not None:
                    on_token(draft.text)
                return turn.answer(draft.text, verdict.citations, EXTRACTIVE, grounded=True)
            draft = f"extractive draft failed its check: {verdict.reason}"
        self._fall(turn, EXTRACTIVE, ESCALATE, draft)
        text = _ESCALATION.get(question.technical_level, _ESCALATION["basic"])
        if on_token is not None:
            on_token(text)
        return turn.answer(text, (), ESCALATE, grounded=False)

    def _ask(
        self,
        link: LLMLink,
        turn: _Turn,
        messages: Sequence[Message],
        on_token: TokenCallback | None,
        on_retract: RetractCallback | None,
    ) -> Answer | str:
        """The link's grounded answer, or why it is passed over."""
        if not link.breaker.allow():
            return "circuit open"
        tenant = turn.question.tenant_id
        estimate = sum(len(m.content) for m in messages) // 4 + link.max_reply_tokens
        if link.budget is not None and not link.budget.allows(tenant, estimate):
            return f"token budget exhausted for tenant {tenant}"
        gate = _Gate(on_token, lambda s: self._check_sentence(s, turn))
        try:
            reply = link.llm.complete(
                messages, timeout_s=link.timeout_s, on_token=gate.feed if on_token else None
            )
        except Rejected as exc:
            link.breaker.success()
            prompt_tokens = estimate - link.max_reply_tokens
            turn.spend(link, LLMReply(gate.text, "", prompt_tokens, len(gate.text) // 4))
            return gate.retract(on_retract, f"rejected while streaming: {exc}")
        except LLMTimeout:
            link.breaker.failure()
            return gate.retract(on_retract, f"timeout after {link.timeout_s}s")
        except LLMError as exc:
            link.breaker.failure()
            return gate.retract(on_retract, exc.reason)
        except Exception as exc:  # an adapter bug must not silence the whole chain
            link.breaker.failure()
            return gate.retract(on_retract, f"error {type(exc).__name__}: {str(exc)[:160]}")
        link.breaker.success()
        turn.spend(link, reply)
        text = reply.text.strip()
        if not text or text.startswith(NO_ANSWER):
            return gate.retract(on_retract, "declined: the passages do not answer")
        echo = self._echo(text, turn.report)
        if echo:
            return gate.retract(on_retract, f"injection echo: {echo}")
        verdict = check_answer(text, turn.question.passages, self.policy)
        if not verdict.ok:
            return gate.retract(on_retract, f"ungrounded: {verdict.reason}")
        gate.finish()
        return turn.answer(text, verdict.citations, link.name, grounded=True)

    def _check_sentence(self, sentence: str, turn: _Turn) -> str | None:
        echo = self._echo(sentence, turn.report)
        if echo:
            return f"injection echo: {echo}"
        _, _, problem = check_sentence(sentence, turn.evidence, self.policy)
        return f"ungrounded: {problem}" if problem else None

    @staticmethod
    def _echo(text: str, report: InjectionReport) -> str | None:
        return echo_reason(
            text, canary=CANARY, system_prompt=SYSTEM_PROMPT, payloads=report.payloads
        )

    def _fall(self, turn: _Turn, name: str, next_name: str, reason: str) -> None:
        turn.fallbacks.append(f"{name}: {reason}")
        if self._on_fallback is not None:
            self._on_fallback(name, next_name, reason.split(":")[0])


class _Turn:
    """What one ``answer`` call accumulates: fallbacks, flags and usage."""

    def __init__(self, question: Question, report: InjectionReport, flags: tuple[str, ...]):
        self.question = question
        self.report = report
        self.flags = flags
        self.evidence = Evidence(question.passages)
        self.fallbacks: list[str] = []
        self.usage: dict[str, float] = {}

    def spend(self, link: LLMLink, reply: LLMReply) -> None:
        if link.budget is not None:
            link.budget.spend(self.question.tenant_id, reply.total_tokens)
        cost = (
            reply.prompt_tokens * link.cost_prompt_1k
            + reply.completion_tokens * link.cost_completion_1k
        ) / 1000
        for key, value in (
            ("llm_calls", 1),
            ("prompt_tokens", reply.prompt_tokens),
            ("completion_tokens", reply.completion_tokens),
            ("total_tokens", reply.total_tokens),
            ("cost_usd", cost),
        ):
            self.usage[key] = self.usage.get(key, 0) + value

    def answer(self, text: str, citations: tuple[str, ...], link: str, *, grounded: bool) -> Answer:
        return Answer(
            text=text,
            citations=citations,
            link=link,
            grounded=grounded,
            fallbacks=tuple(self.fallbacks),
            flags=self.flags,
            usage=dict(self.usage),
        )


class _Gate:
    """Lets streamed text through one checked sentence at a time."""

    def __init__(self, sink: TokenCallback | None, check: Callable[[str], str | None]) -> None:
        self._sink = sink
        self._check = check
        self.text = ""
        self._released = 0

    def feed(self, delta: str) -> None:
        self.text += delta
        pending = self.text[self._released :]
        fence = _unclosed_fence(self.text, self._released)
        if fence is not None:
            pending = pending[: fence - self._released]
        cut = max((m.end() for m in _BOUNDARY.finditer(pending)), default=0)
        if cut == 0:
            return
        chunk = pending[:cut]
        for sentence in split_sentences(chunk):
            problem = self._check(sentence)
            if problem:
                raise Rejected(problem)
        self._emit(chunk)
        self._released += cut

    def finish(self) -> None:
        self._emit(self.text[self._released :])
        self._released = len(self.text)

    def retract(self, on_retract: RetractCallback | None, reason: str) -> str:
        if self._released and on_retract is not None:
            on_retract(reason)
        return reason

    def _emit(self, chunk: str) -> None:
        if chunk and self._sink is not None:
            self._sink(chunk)


def _unclosed_fence(text: str, start: int) -> int | None:
    """Where the last still-open ``` fence begins, if it begins at or after ``start``."""
    positions = [m.start() for m in re.finditer(r"^[ \t]*```", text, re.MULTILINE)]
    if len(positions) % 2 == 1 and positions[-1] >= start:
        return positions[-1]
    return None


def _flags(
    given: tuple[str, ...], report: InjectionReport, poisoned: tuple[str, ...]
) -> tuple[str, ...]:
    flags = list(given)
    if report.detected or poisoned:
        flags.append("prompt_injection")
    flags += [f"injection_rule:{rule}" for rule in report.rules]
    if poisoned:
        flags.append("prompt_injection_passage")
    return tuple(dict.fromkeys(flags))
