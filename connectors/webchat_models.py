"""Request and response models of the web-chat API, and its one error shape.

Every error the connector returns is ``{"error": "<code>", "detail": "<human message>"}``;
handlers raise :class:`ApiError` and the app turns it into that JSON body.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Largest request body the connector reads (2 MiB); larger bodies get 413.
MAX_BODY_BYTES = 2 * 1024 * 1024
CHANNEL = "web_chat"


class ApiError(Exception):
    """An error answered as ``{"error": code, "detail": detail}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail

    def body(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx answer."""

    error: str = Field(description="Stable machine-readable code, e.g. `unknown_conversation`.")
    detail: str = Field(description="Human-readable explanation.")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": "unauthorized", "detail": "missing API key"}]}
    )


class StartConversationRequest(BaseModel):
    """Opens a conversation; every field is optional and the body may be omitted."""

    model_config = ConfigDict(extra="ignore")

    channel: Literal["web_chat"] = Field(default="web_chat", description="Always `web_chat` here.")
    customer_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Customer id known to the site, if any.",
    )
    locale: str | None = Field(
        default=None, min_length=2, max_length=35, description="BCP 47 language tag, e.g. `en-GB`."
    )


class ConversationCreated(BaseModel):
    """A conversation was opened (``ConversationStarted`` is durably on Kafka)."""

    conversation_id: str = Field(description="Id to post messages to and stream replies from.")
    tenant_id: str = Field(description="Tenant the API key belongs to.")


class PostMessageRequest(BaseModel):
    """One customer message."""

    model_config = ConfigDict(extra="ignore")

    text: str = Field(
        description="Message text. Must contain a non-whitespace character; longer texts "
        "are truncated to the connector's limit and flagged, never rejected."
    )
    message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:@-]+$",
        description="Idempotency key: posting the same id again yields the same event id. "
        "Defaults to a new UUID4.",
    )
    customer_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Customer id; defaults to the one the conversation was opened with.",
    )


class MessageAccepted(BaseModel):
    """The message was accepted (``MessageReceived`` is durably on Kafka)."""

    message_id: str = Field(description="The idempotency key used.")
    event_id: str = Field(description="Id of the `MessageReceived` event.")
    truncated: bool = Field(description="True when the text was cut to the limit.")
    accepted_chars: int = Field(description="Characters of text accepted (after cleaning).")
    original_length: int = Field(description="Characters of text as sent.")


class Health(BaseModel):
    """Liveness or readiness report."""

    status: str = Field(description="`ok`, `ready` or `not_ready`.")
    broker: bool | None = Field(default=None, description="Kafka answered a metadata request.")
    outbound_consumer: bool | None = Field(
        default=None, description="The reply consumer is running and has its partitions."
    )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry documenting error statuses in OpenAPI."""
    return {s: {"model": ErrorResponse} for s in statuses}


def request_body_doc(model: type[BaseModel], *, required: bool) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body itself (to control its errors)."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
