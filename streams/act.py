"""The act stage's I/O: performs an ``ActionRequested`` once and records the result.

Workflows (password reset, API diagnosis, invoices, refunds) go through
:meth:`agent.workflows.Workflows.perform`; ``kind="answer"`` retrieves passages from the
tenant's knowledge base and asks the grounded responder. The adapters are built on
first use by the factories :func:`streams.bootstrap.build_actor` passes in, and every
workflow runs on the request's clock (its ``occurred_at``), so a result depends only on
the request and the adapters' state. Nothing here raises: a failure is recorded as
``ActionCompleted(status="error")``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from events.actions import ActionCompleted, ActionRequested
from events.base import Event, caused_envelope
from events.decisions import ReplyRequested
from processors.actions import mask

if TYPE_CHECKING:
    from agent.responder import Responder
    from agent.responder.types import TechnicalLevel
    from agent.workflows import Workflows
    from kb.retrieve import Retriever

PRODUCER = "step.act"
PRODUCER_VERSION = "0.1.0"
MAX_REASON = 500
#: Retrieval results handed to the responder.
TOP_K = 4
#: A question shorter than this many words is searched together with the previous turn.
SHORT_QUESTION = 5


class Actor:
    """Performs actions with lazily built adapters (one set per worker)."""

    def __init__(
        self,
        workflows: Callable[[Callable[[], datetime]], Workflows],
        responder: Callable[[], Responder],
        retriever: Callable[[str], Retriever],
    ) -> None:
        self._make_workflows, self._make_responder = workflows, responder
        self._retriever = retriever
        self._workflows: Workflows | None = None
        self._responder: Responder | None = None
        self._now: datetime | None = None

    def _clock(self) -> datetime:
        if self._now is None:
            raise RuntimeError("workflow clock read outside an action")
        return self._now

    def act(self, request: ActionRequested) -> list[Event]:
        """The result event (and, for an answer, the reply), never an exception."""
        try:
            if request.kind == "answer":
                return self._answer(request)
            return [self._perform(request)]
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:MAX_REASON]
            return [completed(request, status="error", outcome="error", reason=reason)]

    def _perform(self, request: ActionRequested) -> ActionCompleted:
        from agent.workflows import ActionRequest

        if self._workflows is None:
            self._workflows = self._make_workflows(self._clock)
        self._now = request.envelope.occurred_at
        try:
            result = self._workflows.perform(
                ActionRequest(
                    kind=request.kind,  # type: ignore[arg-type]
                    tenant_id=request.envelope.tenant_id,
                    conversation_id=request.envelope.conversation_id,
                    params=dict(request.params),
                )
            )
        finally:
            self._now = None
        details = dict(result.details)
        if request.kind == "password_reset" and request.params.get("email"):
            details["to"] = mask(request.params["email"])
        return completed(
            request,
            status=result.status,
            outcome=result.outcome,
            details=details,
            reason=result.reason[:MAX_REASON],
        )

    def _answer(self, request: ActionRequested) -> list[Event]:
        from agent.responder import Passage, Question

        if self._responder is None:
            self._responder = self._make_responder()
        tenant = request.envelope.tenant_id
        question = request.params.get("question", "")
        history = tuple(h for h in request.params.get("history", "").split("\n") if h)
        query = question
        if len(question.split()) < SHORT_QUESTION and history:
            query = f"{history[-1]} {question}"
        found = self._retriever(tenant).search(query, tenant=tenant, k=TOP_K)
        passages = tuple(
            Passage(
                id=h.passage_id,
                article_id=h.article_id,
                title=h.title,
                text=h.text,
                score=round(found.confidence * h.fused, 4),
            )
            for h in found.hits
        )
        level: TechnicalLevel = "technical" if request.technical_level == "technical" else "basic"
        answer = self._responder.answer(
            Question(
                text=question,
                tenant_id=tenant,
                intent=request.intent,
                passages=passages,
                history=history,
                technical_level=level,
            )
        )
        details = {
            "grounded": str(answer.grounded).lower(),
            "confidence": f"{found.confidence:.4f}",
            "fallbacks": "; ".join(answer.fallbacks),
            "flags": ",".join(answer.flags),
        }
        details = {k: v for k, v in details.items() if v}
        if answer.escalated:
            return [
                completed(
                    request,
                    status="escalated",
                    outcome="escalate",
                    details=details,
                    reason="no grounded answer",
                    link=answer.link,
                )
            ]
        done = completed(
            request,
            status="completed",
            outcome="answered",
            details=details,
            citations=tuple(answer.citations),
            link=answer.link,
        )
        env = caused_envelope(
            request.envelope, ReplyRequested, producer=PRODUCER, producer_version=PRODUCER_VERSION
        )
        reply = ReplyRequested(
            envelope=env,
            reply_id=env.event_id,
            message_id=request.message_id,
            channel="web_chat",
            text=answer.text,
            kind="answer",
        )
        return [reply, done]


def completed(request: ActionRequested, **fields: Any) -> ActionCompleted:
    """The ``ActionCompleted`` for ``request`` (id and time derive from the request)."""
    env = caused_envelope(
        request.envelope, ActionCompleted, producer=PRODUCER, producer_version=PRODUCER_VERSION
    )
    return ActionCompleted(
        envelope=env,
        action_id=request.action_id,
        message_id=request.message_id,
        kind=request.kind,
        status=fields.pop("status"),
        outcome=fields.pop("outcome"),
        details=fields.pop("details", {}),
        reason=fields.pop("reason", ""),
        **fields,
    )
