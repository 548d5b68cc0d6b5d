"""Agent-console read API over the session-state projection.

``state_router(get_redis, resolve_tenant, topic_prefix=...)`` is an ``APIRouter`` with
``GET /v1/conversations/{conversation_id}/state``: the conversation's hash, typed by
:func:`decode_state`. The tenant comes from ``resolve_tenant`` (the app's API-key
dependency), so another tenant's conversation is simply not found (404
``unknown_conversation``). ``get_redis`` is a dependency returning the app's
``redis.asyncio.Redis`` (or None when there is none); when Redis does not answer the
route says 503 ``state_unavailable`` and the rest of the app is unaffected. Errors are
``{"error": "<code>", "detail": "<message>"}`` like every casestream API.
"""

# No ``from __future__ import annotations``: FastAPI must see the route's dependencies
# (closure variables) as objects, not strings.
import json
import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Security
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from projections.session import SessionKeys, live_key

log = logging.getLogger(__name__)

#: Value types of the hash fields (everything else is text; "" means none).
FIELD_TYPES: dict[str, type] = {
    "turn_count": int,
    "event_count": int,
    "replies_delivered": int,
    "feedback_rating": int,
    "last_intent_confidence": float,
    "sentiment_valence": float,
    "frustration": float,
    "last_action_confidence": float,
    "escalated": bool,
    "closed": bool,
    "resolved": bool,
    "context_stack": list,
    "intent_history": list,
}


def decode_state(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored hash as typed, JSON-ready values (internal ``_`` fields left out)."""
    state: dict[str, Any] = {"escalated": False, "closed": False}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        text = value.decode() if isinstance(value, bytes) else str(value)
        if name.startswith("_"):
            continue
        kind = FIELD_TYPES.get(name, str)
        if text == "":
            state[name] = None
        elif kind is bool:
            state[name] = text == "1"
        elif kind is list:
            state[name] = json.loads(text)
        else:
            state[name] = kind(text)
    return state


class ConversationStateView(BaseModel):
    """Session state of one conversation, as the projection last folded it."""

    model_config = ConfigDict(extra="allow")

    tenant_id: str
    conversation_id: str
    status: str = Field(description="`open`, `escalated` or `closed`.")
    channel: str | None = None
    started_at: str | None = None
    turn_count: int = Field(0, description="Customer messages received.")
    event_count: int = Field(0, description="Distinct events folded in.")
    last_intent: str | None = Field(None, description="Top intent of the last message.")
    last_intent_confidence: float | None = None
    sentiment_label: str | None = None
    frustration: float | None = Field(None, description="Frustration of the last message.")
    current_topic: str | None = Field(None, description="Top of `context_stack`.")
    context_stack: list[str] = Field(
        [], description="Topics (intents), oldest first; returning to one pops those above it."
    )
    intent_history: list[str] = Field([], description="Top intents of the last 10 messages.")
    last_action: str | None = Field(None, description="reply | clarify | escalate | act")
    last_action_reason: str | None = None
    escalated: bool = False
    case_id: str | None = None
    escalation_reason: str | None = None
    closed: bool = False
    last_event_id: str | None = None
    last_event_type: str | None = None
    last_event_at: str | None = None


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _doc(description: str, code: str) -> dict[str, Any]:
    example = {"error": code, "detail": description}
    return {"description": description, "content": {"application/json": {"example": example}}}


def state_router(
    get_redis: Callable[..., Any],
    resolve_tenant: Callable[..., Any],
    *,
    topic_prefix: str,
) -> APIRouter:
    """The state route, reading the keys of the live generation of ``topic_prefix``'s
    session projection."""
    router = APIRouter(tags=["agent console"])

    @router.get(
        "/v1/conversations/{conversation_id}/state",
        response_model=ConversationStateView,
        summary="Session state of a conversation",
        description="What the session-state projection holds for the conversation: status, "
        "turns, last intent and sentiment, context stack, escalation, last decision.",
        responses={
            401: _doc("missing or unknown API key", "unauthorized"),
            404: _doc("no state for this conversation and tenant", "unknown_conversation"),
            503: _doc("the session-state store is unreachable", "state_unavailable"),
        },
    )
    async def conversation_state(
        conversation_id: str,
        tenant: Annotated[str, Security(resolve_tenant)],
        client: Annotated[AsyncRedis | None, Depends(get_redis)],
    ) -> Response | dict[str, Any]:
        unavailable = "the session-state store is unreachable; retry later"
        if client is None:
            return _error(503, "state_unavailable", unavailable)
        try:
            generation = await client.get(live_key(topic_prefix))
            if isinstance(generation, bytes):
                generation = generation.decode()
            keys = SessionKeys(topic_prefix, generation or "")
            raw = await client.hgetall(keys.conversation(tenant, conversation_id))
        except RedisError as exc:
            log.warning("session state of %s unavailable: %r", conversation_id, exc)
            return _error(503, "state_unavailable", unavailable)
        if not raw:
            detail = f"no state for conversation {conversation_id!r} of this tenant"
            return _error(404, "unknown_conversation", detail)
        return decode_state(raw)

    return router
