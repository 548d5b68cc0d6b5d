"""Avro codec in Confluent wire format: magic byte 0, 4-byte big-endian schema id, body.

The writer schema is always the current schema of the event's type; the reader
resolves an older writer schema (named by the id) to the current one, which is how
backward-compatible schema changes reach old records.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from events.base import Event, from_record, to_record
from events.catalog import EVENT_CLASSES, SchemaEntry, current_entries
from events.registry import InProcessRegistry, SchemaRegistry

MAGIC = 0
_HEADER = struct.Struct(">bI")


class DecodeError(ValueError):
    """Bytes that are not a casestream event in Confluent wire format."""


def subject_name(topic: str, event_type: str) -> str:
    """Subject under TopicRecordNameStrategy: several event types share a topic."""
    return f"{topic}-casestream.events.{event_type}"


class AvroCodec:
    """Encodes events to and decodes them from Confluent-framed Avro bytes."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self._registry: SchemaRegistry = registry or InProcessRegistry()
        self._entries: dict[str, SchemaEntry] = current_entries()
        self._write_ids: dict[tuple[str, str], int] = {}
        self._readers: dict[int, tuple[Any, Any, type[Event]]] = {}

    def encode(self, event: Event, topic: str = "") -> bytes:
        name = type(event).__name__
        entry = self._entries[name]
        key = (topic, name)
        schema_id = self._write_ids.get(key)
        if schema_id is None:
            schema_id = self._registry.id_for(entry, subject_name(topic, name))
            self._write_ids[key] = schema_id
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC, schema_id))
        fastavro.schemaless_writer(buf, entry.parsed, to_record(event))
        return buf.getvalue()

    def _reader(self, schema_id: int) -> tuple[Any, Any, type[Event]]:
        plan = self._readers.get(schema_id)
        if plan is None:
            writer_raw = self._registry.schema_for(schema_id)
            name = str(writer_raw["name"]).rsplit(".", 1)[-1]
            cls = EVENT_CLASSES.get(name)
            if cls is None:
                raise DecodeError(f"schema id {schema_id} names unknown event type {name!r}")
            writer = fastavro.parse_schema(writer_raw, named_schemas={})
            plan = (writer, self._entries[name].parsed, cls)
            self._readers[schema_id] = plan
        return plan

    def decode(self, data: bytes | None) -> Event:
        """Decode one record value; raises :class:`DecodeError` with the reason."""
        if not data or len(data) < _HEADER.size:
            raise DecodeError(
                f"record of {len(data or b'')} bytes is too short for the wire format"
            )
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(f"magic byte is {magic}, expected {MAGIC} (not Confluent framing)")
        try:
            writer, reader, cls = self._reader(schema_id)
        except KeyError as exc:
            raise DecodeError(str(exc)) from exc
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[_HEADER.size :]), writer, reader)
            return from_record(cls, record)
        except Exception as exc:  # corrupt body: report, never crash the stream
            raise DecodeError(f"Avro body does not match schema {schema_id}: {exc!r}") from exc
