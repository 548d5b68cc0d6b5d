"""Event base types: the envelope every event carries and record conversion.

Events are frozen dataclasses whose class name is the Avro record name and the wire
``event_type``. Collections are tuples so an event can never change after it is made.
Conversion to and from the plain dicts fastavro reads and writes is generic and
driven by the dataclass fields, which a round-trip test keeps in step with the
``.avsc`` files.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

#: Namespace of every derived event id (uuid5); changing it changes every id.
EVENT_ID_NAMESPACE = uuid.UUID("5b0e6f1a-9a54-4f1e-8d2f-6c6173657374")

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """Metadata shared by every event (Avro record ``casestream.events.Envelope``)."""

    event_id: str
    event_type: str
    schema_version: int
    occurred_at: datetime
    tenant_id: str
    conversation_id: str
    correlation_id: str
    causation_id: str | None
    producer: str
    producer_version: str

    @property
    def key(self) -> str:
        """Kafka key of the conversation: ``tenant_id/conversation_id``."""
        return conversation_key(self.tenant_id, self.conversation_id)


def conversation_key(tenant_id: str, conversation_id: str) -> str:
    """The partitioning key of every conversation event."""
    return f"{tenant_id}/{conversation_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event type. Subclasses set ``SCHEMA_VERSION`` and add fields."""

    SCHEMA_VERSION: ClassVar[int] = 1
    envelope: Envelope

    @classmethod
    def event_type(cls) -> str:
        return cls.__name__

    @property
    def event_id(self) -> str:
        return self.envelope.event_id

    @property
    def key(self) -> str:
        return self.envelope.key


def derive_event_id(cause_id: str, event_type: str, index: int = 0) -> str:
    """Deterministic id of the ``index``-th ``event_type`` caused by ``cause_id``.

    A redelivered input therefore yields outputs with the same ids, which is what lets
    every reader deduplicate by event id.
    """
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{cause_id}/{event_type}/{index}"))


def new_event_id() -> str:
    """A fresh id for an event that enters the system from outside (a connector)."""
    return str(uuid.uuid4())


def utc_now_millis() -> datetime:
    """Now, in UTC, truncated to the millisecond precision Avro keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def origin_envelope(
    event_type: type[Event],
    *,
    tenant_id: str,
    conversation_id: str,
    producer: str,
    producer_version: str,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """Envelope of an event that starts a causal chain (no cause inside the system)."""
    eid = event_id or new_event_id()
    return Envelope(
        event_id=eid,
        event_type=event_type.event_type(),
        schema_version=event_type.SCHEMA_VERSION,
        occurred_at=occurred_at or utc_now_millis(),
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        correlation_id=eid,
        causation_id=None,
        producer=producer,
        producer_version=producer_version,
    )


def caused_envelope(
    cause: Envelope,
    event_type: type[Event],
    *,
    producer: str,
    producer_version: str,
    index: int = 0,
) -> Envelope:
    """Envelope of an event caused by ``cause``: id and time derive from the cause."""
    return Envelope(
        event_id=derive_event_id(cause.event_id, event_type.event_type(), index),
        event_type=event_type.event_type(),
        schema_version=event_type.SCHEMA_VERSION,
        occurred_at=cause.occurred_at,
        tenant_id=cause.tenant_id,
        conversation_id=cause.conversation_id,
        correlation_id=cause.correlation_id,
        causation_id=cause.event_id,
        producer=producer,
        producer_version=producer_version,
    )


# --- record conversion -------------------------------------------------------------

_Converter = Callable[[Any], Any]
_FROM_CACHE: dict[type, Callable[[Mapping[str, Any]], Any]] = {}
_TO_CACHE: dict[type, Callable[[Any], dict[str, Any]]] = {}


def to_record(obj: Any) -> Any:
    """Plain-dict form of an event (or nested value) for fastavro."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return record_writer(type(obj))(obj)
    if isinstance(obj, tuple | list):
        return [to_record(v) for v in obj]
    return obj


def _to_converter(hint: Any) -> _Converter | None:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        maybe = _to_converter(inner[0]) if len(inner) == 1 else None
        if maybe is None:
            return None
        some: _Converter = maybe
        return lambda v: None if v is None else some(v)
    if origin is tuple:
        item = _to_converter(typing.get_args(hint)[0])
        if item is None:
            return list
        each: _Converter = item
        return lambda v: [each(x) for x in v]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return record_writer(hint)
    if hint is datetime:
        return lambda v: v if v.tzinfo is not None else v.replace(tzinfo=UTC)
    return None


def record_writer(cls: type) -> Callable[[Any], dict[str, Any]]:
    """A function that turns a ``cls`` instance into a fastavro dict (cached per class)."""
    cached = _TO_CACHE.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    plan = [(f.name, _to_converter(hints[f.name])) for f in dataclasses.fields(cls)]
    plain = tuple(name for name, conv in plan if conv is None)
    converted = tuple((name, conv) for name, conv in plan if conv is not None)

    def write(obj: Any) -> dict[str, Any]:
        out = {name: getattr(obj, name) for name in plain}
        for name, conv in converted:
            out[name] = conv(getattr(obj, name))
        return out

    _TO_CACHE[cls] = write
    return write


def _converter_for(hint: Any) -> _Converter | None:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        maybe = _converter_for(inner[0]) if len(inner) == 1 else None
        if maybe is None:
            return None
        some: _Converter = maybe
        return lambda v: None if v is None else some(v)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        conv = _converter_for(item)
        if conv is None:
            return tuple
        return lambda v: tuple(conv(x) for x in v)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return record_reader(hint)
    return None


def record_reader(cls: type[T]) -> Callable[[Mapping[str, Any]], T]:
    """A function that builds ``cls`` from the dict fastavro decoded (cached per class)."""
    cached = _FROM_CACHE.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    plan: list[tuple[str, _Converter | None]] = [
        (f.name, _converter_for(hints[f.name]))
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    ]

    def read(data: Mapping[str, Any]) -> T:
        kwargs = {}
        for name, conv in plan:
            value = data[name]
            kwargs[name] = conv(value) if conv is not None else value
        return cls(**kwargs)

    _FROM_CACHE[cls] = read
    return read


def from_record(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build ``cls`` (an event or nested record class) from a decoded dict."""
    return record_reader(cls)(data)
