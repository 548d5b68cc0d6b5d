"""HTTP plumbing of the web-chat connector: API-key lookup, the error shape, request
metrics, and the per-socket send/receive loop."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.webchat_hub import Connection
from connectors.webchat_input import describe_errors
from connectors.webchat_models import ApiError
from streams import metrics

log = logging.getLogger(__name__)

WS_UNAUTHORIZED = 4401
WS_UNKNOWN_CONVERSATION = 4404
WS_TOO_SLOW = 1013


def tenant_for(api_keys: Mapping[str, str], key: str | None) -> str | None:
    """The tenant of ``key``, compared in constant time per configured key."""
    if not key:
        return None
    given = key.encode()
    found = None
    for candidate, tenant in api_keys.items():
        if hmac.compare_digest(candidate.encode(), given):
            found = tenant
    return found


class RequestMetrics:
    """ASGI middleware counting HTTP requests by route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.HTTP_REQUESTS.labels(route, str(status)).inc()


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def invalid_request(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        body = {"error": "validation_error", "detail": describe_errors(exc.errors())}
        return JSONResponse(body, status_code=422)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        body = {"error": code, "detail": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)


async def serve_socket(websocket: WebSocket, conn: Connection) -> None:
    """Send queued frames until the client leaves; answer ``{"type": "ping"}`` frames."""

    async def writer() -> None:
        while True:
            frame = await conn.queue.get()
            if frame is None:
                await websocket.close(WS_TOO_SLOW, "client too slow; reconnect")
                return
            await websocket.send_json(frame)

    async def reader() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if _is_ping(message.get("text")):
                conn.offer({"type": "pong"})

    async with anyio.create_task_group() as group:

        async def until_done(part: Callable[[], Awaitable[None]]) -> None:
            try:
                await part()
            except Exception as exc:  # a send or receive on a socket that went away
                log.debug("web-chat socket ended: %r", exc)
            group.cancel_scope.cancel()  # either side ending ends the session

        group.start_soon(until_done, writer)
        group.start_soon(until_done, reader)


def _is_ping(text: Any) -> bool:
    if not isinstance(text, str) or len(text) > 1000:
        return False
    try:
        frame = json.loads(text)
    except ValueError:
        return False
    return isinstance(frame, dict) and frame.get("type") == "ping"
