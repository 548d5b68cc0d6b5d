"""The LLM port over any OpenAI-compatible chat-completions endpoint (``openai`` package).

Streams by default: deltas go to ``on_token`` as they arrive and the whole text is
returned. The client never retries (the chain decides what happens next) and the call's
timeout is the link's; a stream still running at its deadline is closed and reported
as a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from agent.responder.ports import (
    LLMReply,
    LLMTimeout,
    LLMUnavailable,
    Message,
    TokenCallback,
)


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """One endpoint. ``budget_tokens_per_tenant_day`` 0 = unlimited; costs per 1k tokens."""

    base_url: str
    model: str
    api_key: str = "unused"
    timeout_s: float = 10.0
    budget_tokens_per_tenant_day: int = 200_000
    max_tokens: int = 600
    temperature: float = 0.0
    stream: bool = True
    cost_prompt_1k: float = 0.0
    cost_completion_1k: float = 0.0


class OpenAICompatibleLLM:
    """:class:`~agent.responder.ports.LLM` adapter for OpenAI, vLLM, Ollama, LiteLLM..."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "unused",
            timeout=settings.timeout_s,
            max_retries=0,
        )

    @property
    def model(self) -> str:
        return self.settings.model

    def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        on_token: TokenCallback | None = None,
    ) -> LLMReply:
        deadline = time.monotonic() + timeout_s
        client = self._client.with_options(timeout=timeout_s)
        payload = [_param(m) for m in messages]
        try:
            if self.settings.stream:
                return self._streamed(client, payload, deadline, timeout_s, on_token)
            return self._whole(client, payload, on_token)
        except openai.APITimeoutError as exc:
            raise LLMTimeout(f"timeout after {timeout_s}s") from exc
        except openai.RateLimitError as exc:
            raise LLMUnavailable("rate limited (HTTP 429)") from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailable(f"HTTP {exc.status_code}") from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"connection failed: {exc}") from exc
        except openai.APIError as exc:
            raise LLMUnavailable(f"API error: {exc}") from exc
        except TimeoutError as exc:  # a read timeout while iterating the stream
            raise LLMTimeout(f"timeout after {timeout_s}s") from exc

    def _streamed(
        self,
        client: openai.OpenAI,
        payload: list[ChatCompletionMessageParam],
        deadline: float,
        timeout_s: float,
        on_token: TokenCallback | None,
    ) -> LLMReply:
        parts: list[str] = []
        prompt_tokens = completion_tokens = 0
        stream = client.chat.completions.create(
            model=self.settings.model,
            messages=payload,
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
            stream=True,
            stream_options={"include_usage": True},
        )
        with stream:
            for chunk in stream:
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens
                    completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    delta = choice.delta.content if choice.delta else None
                    if delta:
                        parts.append(delta)
                        if on_token is not None:
                            on_token(delta)
                if time.monotonic() > deadline:
                    raise LLMTimeout(f"timeout after {timeout_s}s (stream still running)")
        text = "".join(parts)
        return LLMReply(
            text=text,
            model=self.settings.model,
            prompt_tokens=prompt_tokens or _estimate(payload),
            completion_tokens=completion_tokens or len(text) // 4,
        )

    def _whole(
        self,
        client: openai.OpenAI,
        payload: list[ChatCompletionMessageParam],
        on_token: TokenCallback | None,
    ) -> LLMReply:
        completion = client.chat.completions.create(
            model=self.settings.model,
            messages=payload,
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
        )
        if not completion.choices:
            raise LLMUnavailable("reply without choices")
        text = completion.choices[0].message.content or ""
        if on_token is not None and text:
            on_token(text)
        usage = completion.usage
        return LLMReply(
            text=text,
            model=completion.model or self.settings.model,
            prompt_tokens=usage.prompt_tokens if usage else _estimate(payload),
            completion_tokens=usage.completion_tokens if usage else len(text) // 4,
        )


def _param(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return ChatCompletionSystemMessageParam(role="system", content=message.content)
    if message.role == "assistant":
        return ChatCompletionAssistantMessageParam(role="assistant", content=message.content)
    return ChatCompletionUserMessageParam(role="user", content=message.content)


def _estimate(payload: list[ChatCompletionMessageParam]) -> int:
    return sum(len(str(m.get("content", ""))) for m in payload) // 4
