"""A local OpenAI-compatible chat-completions server that the test scripts per request.

``POST /v1/chat/completions`` answers with the next queued :class:`Behaviour` (or the
default one): a reply streamed as Server-Sent Events (``data: {chunk}`` ... ``data:
[DONE]``, with a usage chunk when ``stream_options.include_usage``) or as one JSON
completion; a delay before the first byte or between chunks (slow); an HTTP error with
OpenAI's error body (500, 429 ...). Every request body is kept in ``requests`` so a test
can check what the client sent. FastAPI + uvicorn in a background thread on
``127.0.0.1:0``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

Body = dict[str, Any]


@dataclass
class Behaviour:
    """How to answer one request. ``text`` may be computed from the request body."""

    text: str | Callable[[Body], str] = "I can help with that."
    status: int = 200
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    chunk_chars: int = 16
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def reply(self, body: Body) -> str:
        return self.text(body) if callable(self.text) else self.text


def normal(text: str) -> Behaviour:
    return Behaviour(text=text)


def slow(text: str, delay_s: float) -> Behaviour:
    """Waits ``delay_s`` before answering at all."""
    return Behaviour(text=text, delay_s=delay_s)


def dribbling(text: str, chunk_delay_s: float) -> Behaviour:
    """Starts at once, then sends each chunk ``chunk_delay_s`` apart."""
    return Behaviour(text=text, chunk_delay_s=chunk_delay_s, chunk_chars=8)


def error(status: int) -> Behaviour:
    return Behaviour(status=status)


def echo_system_prompt() -> Behaviour:
    """A model that leaks its instructions verbatim."""
    return Behaviour(text=lambda body: str(system_message(body)))


def system_message(body: Body) -> str | None:
    return next((m["content"] for m in body.get("messages", []) if m["role"] == "system"), None)


def user_message(body: Body) -> str | None:
    return next((m["content"] for m in body.get("messages", []) if m["role"] == "user"), None)


class FakeOpenAIServer:
    """``with FakeOpenAIServer() as server: OpenAI(base_url=server.base_url)``."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self.default = default or Behaviour()
        self.requests: list[Body] = []
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def then(self, *behaviours: Behaviour) -> FakeOpenAIServer:
        """Queue behaviours for the next requests, in order."""
        with self._lock:
            self._script.extend(behaviours)
        return self

    def start(self) -> FakeOpenAIServer:
        config = uvicorn.Config(
            self._app(),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Response:
            body: Body = await request.json()
            self.requests.append(body)
            behaviour = self._next()
            if behaviour.delay_s:
                await asyncio.sleep(behaviour.delay_s)
            if behaviour.status != 200:
                return _error(behaviour.status)
            text = behaviour.reply(body)
            usage = _usage(body, text, behaviour)
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(
                    _sse(body, text, behaviour, usage if include_usage else None),
                    media_type="text/event-stream",
                )
            return JSONResponse(_completion(body, text, usage))

        return app


async def _sse(
    body: Body, text: str, behaviour: Behaviour, usage: Body | None
) -> AsyncIterator[str]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())

    def chunk(delta: Body, finish: str | None = None, **extra: Any) -> str:
        choices = [] if extra else [{"index": 0, "delta": delta, "finish_reason": finish}]
        payload = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.get("model", "fake"),
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    step = max(1, behaviour.chunk_chars)
    for i in range(0, len(text), step):
        if behaviour.chunk_delay_s:
            await asyncio.sleep(behaviour.chunk_delay_s)
        yield chunk({"content": text[i : i + step]})
    yield chunk({}, "stop")
    if usage is not None:
        yield chunk({}, usage=usage)
    yield "data: [DONE]\n\n"


def _completion(body: Body, text: str, usage: Body) -> Body:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def _usage(body: Body, text: str, behaviour: Behaviour) -> Body:
    prompt = behaviour.prompt_tokens
    if prompt is None:
        prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
    completion = behaviour.completion_tokens
    if completion is None:
        completion = max(1, len(text) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _error(status: int) -> JSONResponse:
    kind = {429: "rate_limit_exceeded", 500: "server_error"}.get(status, "invalid_request_error")
    headers = {"retry-after": "1"} if status == 429 else None
    return JSONResponse(
        {"error": {"message": f"fake error {status}", "type": kind, "code": kind}},
        status_code=status,
        headers=headers,
    )
