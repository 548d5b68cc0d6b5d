"""The web-chat connector: an HTTP + WebSocket edge that turns chat traffic into events.

``create_app(settings)`` builds the FastAPI app (no client is made before its lifespan
starts); ``serve(settings)`` runs it with uvicorn. Customer input becomes
``ConversationStarted`` / ``MessageReceived`` on the inbound topic, and the HTTP answer
is sent only once Kafka has acknowledged the event. Replies (``ReplyRequested`` on the
outbound topic) are pushed to the conversation's WebSockets and reported as
``ReplyDelivered``. Module layout: ``webchat_models`` (API shapes), ``webchat_input``
(bodies and text), ``webchat_hub`` (conversations, sockets, buffers),
``webchat_delivery`` (reply consumer), ``webchat_runtime`` (clients).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Request, Security, WebSocket
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis as AsyncRedis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.webchat_delivery import PRODUCER, PRODUCER_VERSION
from connectors.webchat_http import (
    WS_UNAUTHORIZED,
    WS_UNKNOWN_CONVERSATION,
    RequestMetrics,
    install_error_handlers,
    serve_socket,
    tenant_for,
)
from connectors.webchat_hub import ConversationInfo
from connectors.webchat_input import EmptyMessage, clean_text, parse_json, read_body, validate
from connectors.webchat_models import (
    CHANNEL,
    MAX_BODY_BYTES,
    ApiError,
    ConversationCreated,
    Health,
    MessageAccepted,
    PostMessageRequest,
    StartConversationRequest,
    error_responses,
    request_body_doc,
)
from connectors.webchat_runtime import PUBLISH_TIMEOUT_S, Runtime
from events.base import derive_event_id, origin_envelope
from events.conversation import ConversationStarted, MessageReceived
from projections.session_api import state_router
from streams.settings import Settings

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)

_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="API key; it determines the tenant."
)


async def require_tenant(
    request: Request, key: Annotated[str | None, Security(_api_key)] = None
) -> str:
    """The tenant of the request's API key; 401 ``unauthorized`` if there is none."""
    runtime: Runtime = request.app.state.webchat
    tenant = tenant_for(runtime.settings.api_keys, key)
    if tenant is None:
        detail = "unknown API key" if key else "missing API key (X-API-Key header)"
        raise ApiError(401, "unauthorized", detail)
    return tenant


Tenant = Annotated[str, Security(require_tenant)]


async def session_redis(request: Request) -> AsyncRedis | None:
    """The app's client to the session-state Redis (made in the lifespan; no I/O until used)."""
    client: AsyncRedis | None = getattr(request.app.state, "session_redis", None)
    return client


DESCRIPTION = """\
Web-chat edge of casestream. Authenticate with the `X-API-Key` header. Every error is
`{"error": "<code>", "detail": "<message>"}`.

Replies stream over the WebSocket `/v1/conversations/{conversation_id}/stream` (key in
`X-API-Key` or the `api_key` query parameter) as JSON frames `{"type": "reply", "reply_id",
"message_id", "text", "kind", "conversation_id"}`. Replies made while no socket is open are
kept (last 50 per conversation) and sent to the next socket. Close codes: 4401 bad key,
4404 unknown conversation, 1013 client too slow.
"""


def create_app(
    settings: Settings,
    *,
    outbound_offset_reset: str = "latest",
    publish_timeout: float = PUBLISH_TIMEOUT_S,
) -> FastAPI:
    """The web-chat FastAPI app. Kafka clients are built when its lifespan starts.

    ``outbound_offset_reset`` is where the reply consumer starts when its group has no
    committed offset (``latest``: only replies made from now on); ``publish_timeout``
    bounds how long a request waits for Kafka before answering 503.
    """
    runtime = Runtime(
        settings, outbound_offset_reset=outbound_offset_reset, publish_timeout=publish_timeout
    )

    @contextlib.asynccontextmanager
    async def lifespan(fastapi_app: FastAPI) -> AsyncIterator[None]:
        # Connects on first use: the connector serves chat even while Redis is down.
        state_store = AsyncRedis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            retry=Retry(NoBackoff(), 1),
        )
        fastapi_app.state.session_redis = state_store
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            await state_store.aclose()

    app = FastAPI(
        title="casestream web chat",
        version=PRODUCER_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.webchat = runtime
    app.add_middleware(RequestMetrics)
    install_error_handlers(app)
    app.include_router(
        state_router(session_redis, require_tenant, topic_prefix=settings.topic_prefix)
    )

    limit = settings.max_message_chars

    @app.post(
        "/v1/conversations",
        status_code=201,
        response_model=ConversationCreated,
        summary="Open a conversation",
        description="Publishes `ConversationStarted`. The JSON body is optional.",
        responses=error_responses(400, 401, 413, 422, 503),
        openapi_extra=request_body_doc(StartConversationRequest, required=False),
        tags=["conversations"],
    )
    async def start_conversation(request: Request, tenant: Tenant) -> ConversationCreated:
        body = validate(
            StartConversationRequest, parse_json(await read_body(request), allow_empty=True)
        )
        conversation_id = str(uuid.uuid4())
        envelope = origin_envelope(
            ConversationStarted,
            tenant_id=tenant,
            conversation_id=conversation_id,
            producer=PRODUCER,
            producer_version=PRODUCER_VERSION,
        )
        event = ConversationStarted(
            envelope=envelope,
            channel=body.channel,
            customer_id=body.customer_id,
            locale=body.locale,
        )
        await runtime.publish(event)
        runtime.conversations.add(
            tenant, conversation_id, ConversationInfo(body.customer_id, body.locale)
        )
        return ConversationCreated(conversation_id=conversation_id, tenant_id=tenant)

    @app.post(
        "/v1/conversations/{conversation_id}/messages",
        status_code=202,
        response_model=MessageAccepted,
        summary="Send a customer message",
        description=(
            "Publishes `MessageReceived` and answers once it is on Kafka. Text longer than "
            f"{limit:,} characters is truncated to {limit:,}, flagged `truncated` and "
            "accepted (never dropped); control characters other than newline and tab are "
            "removed (flag `control_chars_removed`). Bodies over "
            f"{MAX_BODY_BYTES // (1024 * 1024)} MiB are refused (413). Reusing a "
            "`message_id` yields the same event id, so retries are safe."
        ),
        responses=error_responses(400, 401, 404, 413, 422, 503),
        openapi_extra=request_body_doc(PostMessageRequest, required=True),
        tags=["conversations"],
    )
    async def post_message(
        request: Request, conversation_id: str, tenant: Tenant
    ) -> MessageAccepted:
        conversation = runtime.conversations.get(tenant, conversation_id)
        if conversation is None:
            raise ApiError(
                404, "unknown_conversation", f"no conversation {conversation_id!r} for tenant"
            )
        body = validate(PostMessageRequest, parse_json(await read_body(request)))
        try:
            text = clean_text(body.text, limit)
        except EmptyMessage as exc:
            raise ApiError(422, "empty_message", str(exc)) from None
        message_id = body.message_id or str(uuid.uuid4())
        event_id = derive_event_id(
            f"webchat/{tenant}/{conversation_id}/{message_id}", MessageReceived.event_type()
        )
        event = MessageReceived(
            envelope=origin_envelope(
                MessageReceived,
                tenant_id=tenant,
                conversation_id=conversation_id,
                producer=PRODUCER,
                producer_version=PRODUCER_VERSION,
                event_id=event_id,
            ),
            message_id=message_id,
            channel=CHANNEL,
            text=text.text,
            original_length=text.original_length,
            truncated=text.truncated,
            flags=text.flags,
            customer_id=body.customer_id or conversation.customer_id,
        )
        await runtime.publish(event)
        return MessageAccepted(
            message_id=message_id,
            event_id=event_id,
            truncated=text.truncated,
            accepted_chars=len(text.text),
            original_length=text.original_length,
        )

    @app.websocket("/v1/conversations/{conversation_id}/stream")
    async def stream(websocket: WebSocket, conversation_id: str) -> None:
        key = websocket.headers.get("x-api-key") or websocket.query_params.get("api_key")
        tenant = tenant_for(settings.api_keys, key)
        # Accept first so that the close code reaches the client (a close before accept
        # becomes a bare HTTP 403 handshake failure).
        await websocket.accept()
        if tenant is None:
            await websocket.close(WS_UNAUTHORIZED, "missing or unknown API key")
            return
        if runtime.conversations.get(tenant, conversation_id) is None:
            await websocket.close(WS_UNKNOWN_CONVERSATION, "unknown conversation")
            return
        conn = runtime.hub.connect(tenant, conversation_id)
        try:
            await serve_socket(websocket, conn)
        finally:
            runtime.hub.disconnect(conn)

    @app.get(
        "/healthz",
        response_model=Health,
        response_model_exclude_none=True,
        summary="Liveness",
        tags=["operations"],
    )
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        summary="Readiness: Kafka reachable and the reply consumer assigned",
        responses=error_responses(503),
        tags=["operations"],
    )
    async def readyz() -> Health:
        broker = await runtime.broker_reachable()
        consumer = runtime.outbound is not None and runtime.outbound.assigned
        if not (broker and consumer):
            detail = f"broker reachable: {broker}; reply consumer assigned: {consumer}"
            raise ApiError(503, "not_ready", detail)
        return Health(status="ready", broker=broker, outbound_consumer=consumer)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
        tags=["operations"],
    )
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(settings: Settings) -> None:
    """Run the connector with uvicorn on ``settings.http_host:settings.http_port``."""
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        proxy_headers=False,
    )
