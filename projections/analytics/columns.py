"""The ingest fast path: Kafka records straight to an Arrow batch for ``analytics.stage``.

:func:`projections.analytics.rows.row_for` builds a row from a decoded :class:`Event`
(one dict per row, every column computed in Python); it is the readable definition and
what the tests hand-check. Ingest does much less in Python, because Python (one core,
under the GIL) was the bottleneck:

* :class:`AvroDictDecoder` decodes the Confluent-framed Avro value straight into the dict
  fastavro produces (the dict ``to_record(event)`` gives), one plan per writer schema id;
  when the writer schema is the current schema, fastavro skips schema resolution;
* :func:`build_batch` keeps per record only the event id, type and time, the record's
  position and the whole event as JSON (the ``payload`` column), as Arrow columns
  (:data:`RAW_SCHEMA`), plus the batch's next offset per partition;
* the store stages them and ClickHouse does the rest (dedup by event id, the typed
  columns from the JSON, the rollups: see ``schema.sql``).

A unit test checks that this path and :func:`row_for` store the same rows.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fastavro
import pyarrow as pa
from fastavro.schema import to_parsing_canonical_form

from events.catalog import current_entries
from events.registry import SchemaRegistry
from projections.analytics.rows import EventRow, dumps_payload
from streams.steps import Record

_HEADER = struct.Struct(">bI")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The columns of ``analytics.events`` in table order, with their Arrow types.
SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.uint16()),
        ("tenant_id", pa.string()),
        ("conversation_id", pa.string()),
        ("occurred_at", pa.timestamp("ms", tz="UTC")),
        ("correlation_id", pa.string()),
        ("causation_id", pa.string()),
        ("producer", pa.string()),
        ("message_id", pa.string()),
        ("channel", pa.string()),
        ("action", pa.string()),
        ("reason", pa.string()),
        ("intent", pa.string()),
        ("confidence", pa.float64()),
        ("sentiment_label", pa.string()),
        ("frustration", pa.float64()),
        ("valence", pa.float64()),
        ("rating", pa.int16()),
        ("resolved", pa.bool_()),
        ("priority", pa.string()),
        ("case_id", pa.string()),
        ("reply_kind", pa.string()),
        ("delivery_status", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("record_time", pa.timestamp("ms", tz="UTC")),
        ("source_topic", pa.string()),
        ("source_partition", pa.uint32()),
        ("source_offset", pa.uint64()),
        ("payload", pa.string()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
assert tuple(EventRow.__annotations__) == COLUMNS, "columns.SCHEMA and rows.EventRow differ"

#: The columns of ``analytics.stage``: what a batch sends to the store.
RAW_SCHEMA = pa.schema([SCHEMA.field(name) for name in (
    "event_id", "event_type", "occurred_at", "record_time", "source_topic",
    "source_partition", "source_offset", "payload",
)])  # fmt: skip


class UndecodableRecord(ValueError):
    """Bytes that are not a casestream event in Confluent wire format."""


@dataclass
class _Plan:
    name: str
    writer: Any
    reader: Any  # None when the writer schema is the current one: no resolution


class AvroDictDecoder:
    """Confluent-framed Avro -> (event type name, fastavro dict), resolved to the current
    schema of the type (an older writer schema is read as the current one, as
    :class:`events.codec.AvroCodec` does)."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._entries = current_entries()
        self._plans: dict[int, _Plan] = {}

    def _plan(self, schema_id: int) -> _Plan:
        plan = self._plans.get(schema_id)
        if plan is None:
            raw = self._registry.schema_for(schema_id)
            name = str(raw["name"]).rsplit(".", 1)[-1]
            entry = self._entries.get(name)
            if entry is None:
                raise UndecodableRecord(f"schema id {schema_id} names unknown type {name!r}")
            writer = fastavro.parse_schema(raw, named_schemas={})
            same = to_parsing_canonical_form(writer) == to_parsing_canonical_form(entry.parsed)
            plan = _Plan(name, writer, None if same else entry.parsed)
            self._plans[schema_id] = plan
        return plan

    def decode(self, value: bytes | None) -> tuple[str, dict[str, Any]]:
        if not value or len(value) < _HEADER.size:
            raise UndecodableRecord(f"record of {len(value or b'')} bytes is too short")
        magic, schema_id = _HEADER.unpack_from(value)
        if magic != 0:
            raise UndecodableRecord(f"magic byte is {magic}, expected 0")
        try:
            plan = self._plan(schema_id)
            data = fastavro.schemaless_reader(
                io.BytesIO(value[_HEADER.size :]), plan.writer, plan.reader
            )
        except UndecodableRecord:
            raise
        except Exception as exc:  # unknown id, corrupt body: report, never crash the stream
            raise UndecodableRecord(f"schema {schema_id}: {exc!r}") from exc
        if not isinstance(data, dict):
            raise UndecodableRecord(f"schema {schema_id} is not a record")
        return plan.name, data


def _ms(value: datetime) -> int:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


Position = dict[tuple[str, int], int]


@dataclass
class EventBatch:
    """A batch for the store: one row per decoded record (:data:`RAW_SCHEMA`), and the
    next offset per (topic, partition) of every record read, decodable or not."""

    table: pa.Table | None = None
    positions: Position = field(default_factory=dict)
    undecodable: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return 0 if self.table is None else int(self.table.num_rows)


def _raw_table(columns: Sequence[Sequence[Any]]) -> pa.Table:
    arrays = []
    for values, f in zip(columns, RAW_SCHEMA, strict=True):
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(values, pa.int64()).cast(f.type))
        else:
            arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=RAW_SCHEMA)


def build_batch(decoder: AvroDictDecoder, records: Sequence[Record]) -> EventBatch:
    """Decode ``records`` into a :data:`RAW_SCHEMA` table."""
    batch = EventBatch()
    ids: list[str] = []
    types: list[str] = []
    times: list[int] = []
    stamps: list[int] = []
    topics: list[str] = []
    partitions: list[int] = []
    offsets: list[int] = []
    payloads: list[str] = []
    positions = batch.positions
    for record in records:
        key = (record.topic, record.partition)
        if record.offset >= positions.get(key, 0):
            positions[key] = record.offset + 1
        try:
            name, data = decoder.decode(record.value)
            envelope = data["envelope"]
            event_id = envelope["event_id"]
            occurred = _ms(envelope["occurred_at"])
            payload = dumps_payload(data)
        except (UndecodableRecord, KeyError, TypeError) as exc:
            batch.undecodable += 1
            batch.errors.append(f"{record.topic}/{record.partition}@{record.offset}: {exc}")
            continue
        ids.append(event_id)
        types.append(name)
        times.append(occurred)
        stamps.append(record.timestamp_ms)
        topics.append(record.topic)
        partitions.append(record.partition)
        offsets.append(record.offset)
        payloads.append(payload)
    if ids:
        batch.table = _raw_table([ids, types, times, stamps, topics, partitions, offsets, payloads])
    return batch


def batch_of_rows(rows: Sequence[EventRow]) -> EventBatch:
    """Row dicts (:func:`row_for`) as the batch :func:`build_batch` gives for them."""
    batch = EventBatch()
    if not rows:
        return batch
    columns: list[list[Any]] = [[] for _ in RAW_SCHEMA]
    for row in rows:
        key = (row["source_topic"], row["source_partition"])
        batch.positions[key] = max(batch.positions.get(key, 0), row["source_offset"] + 1)
        for column, name in zip(columns, RAW_SCHEMA.names, strict=True):
            value = row[name]  # type: ignore[literal-required]
            if name in ("occurred_at", "record_time"):
                value = _ms(datetime.fromisoformat(str(value)))
            column.append(value)
    batch.table = _raw_table(columns)
    return batch
