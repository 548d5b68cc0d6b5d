"""The LLM port: one chat completion, optionally streamed token by token.

Adapters turn their transport's failures into :class:`LLMTimeout` or
:class:`LLMUnavailable` so the chain can record a reason and move on without knowing
which client library sits behind the port.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]
#: Receives each piece of text as it is generated.
TokenCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class LLMReply:
    """The whole generated text and the tokens it cost (estimated if the server is silent)."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class LLMError(Exception):
    """The LLM gave no usable reply; ``reason`` is short and goes into ``Answer.fallbacks``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LLMTimeout(LLMError):
    """No complete reply within the link's timeout."""


class LLMUnavailable(LLMError):
    """Connection refused, HTTP 5xx, 429, or a malformed reply."""


class LLM(Protocol):
    """A chat model. Implementations: :class:`~agent.responder.openai_llm.OpenAICompatibleLLM`."""

    @property
    def model(self) -> str:
        """The model name recorded with every answer it produced."""
        ...

    def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        on_token: TokenCallback | None = None,
    ) -> LLMReply:
        """Generate a reply within ``timeout_s`` seconds, calling ``on_token`` per delta.

        Raises :class:`LLMTimeout` or :class:`LLMUnavailable`. An exception raised by
        ``on_token`` aborts the generation and propagates unchanged.
        """
        ...
