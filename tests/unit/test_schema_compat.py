"""Schema evolution: every current schema reads data written with the committed previous one."""

from __future__ import annotations

import copy
import io
import struct

import fastavro
import pytest

from events.actions import ActionRequested
from events.catalog import EVENT_CLASSES, current_entries, load_entry, schema_files
from events.codec import AvroCodec
from events.compat import incompatibilities
from events.registry import InProcessRegistry

PREVIOUS = "history/v1"


@pytest.mark.parametrize("name", sorted(EVENT_CLASSES))
def test_current_schema_is_backward_compatible_with_previous(name: str) -> None:
    current = current_entries()[name]
    if name not in schema_files(PREVIOUS):  # new since v1: nothing to be compatible with
        assert current.version == 1
        return
    previous = load_entry(name, PREVIOUS)
    assert incompatibilities(current.raw, previous.raw) == []
    if current.version == previous.version:
        assert current.raw == previous.raw, "schema changed without a version bump"
        assert current.schema_id == previous.schema_id
    else:
        assert current.version == previous.version + 1
        assert current.schema_id != previous.schema_id


def test_previous_versions_stay_decodable() -> None:
    registry = InProcessRegistry()
    for name in schema_files(PREVIOUS):
        old = load_entry(name, PREVIOUS)
        assert registry.schema_for(old.schema_id) == old.raw


def _schema() -> dict:  # type: ignore[type-arg]
    return copy.deepcopy(current_entries()["FeedbackReceived"].raw)


def test_checker_rejects_a_new_field_without_default() -> None:
    new = _schema()
    new["fields"].append({"name": "channel", "type": "string"})
    assert incompatibilities(new, _schema()) == ["$.channel: new field without a default"]


def test_checker_accepts_a_new_field_with_default_and_avro_agrees() -> None:
    new = _schema()
    new["fields"].append({"name": "channel", "type": "string", "default": "web_chat"})
    assert incompatibilities(new, _schema()) == []
    old = fastavro.parse_schema(_schema(), named_schemas={})
    buf = io.BytesIO()
    fastavro.schemaless_writer(
        buf,
        old,
        {
            "envelope": {
                "event_id": "e",
                "event_type": "FeedbackReceived",
                "schema_version": 1,
                "occurred_at": 0,
                "tenant_id": "t",
                "conversation_id": "c",
                "correlation_id": "e",
                "causation_id": None,
                "producer": "p",
                "producer_version": "1",
            },
            "rating": 4,
            "comment": None,
        },
    )
    buf.seek(0)
    read = fastavro.schemaless_reader(buf, old, fastavro.parse_schema(new, named_schemas={}))
    assert isinstance(read, dict)
    assert read["channel"] == "web_chat"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda s: s["fields"].__setitem__(1, {**s["fields"][1], "type": "string"}),
            "int cannot be read as string",
        ),
        (
            lambda s: s["fields"].pop(1) and s["fields"].append({"name": "stars", "type": "int"}),
            "new field without a default",
        ),
        (lambda s: s.__setitem__("name", "Rating"), "record renamed"),
    ],
)
def test_checker_rejects_breaking_changes(mutate, expected) -> None:  # type: ignore[no-untyped-def]
    new = _schema()
    mutate(new)
    problems = incompatibilities(new, _schema())
    assert any(expected in p for p in problems), problems


def test_type_widening_is_allowed() -> None:
    new = _schema()
    new["fields"][1] = {**new["fields"][1], "type": "long"}
    assert incompatibilities(new, _schema()) == []


def test_action_requested_v1_records_read_as_web_chat() -> None:
    """Records written before ``channel`` existed (v1, id 1301) decode with the default."""
    old = load_entry("ActionRequested", PREVIOUS)
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, old.schema_id))
    envelope = {
        "event_id": "e",
        "event_type": "ActionRequested",
        "schema_version": 1,
        "occurred_at": 0,
        "tenant_id": "t",
        "conversation_id": "c",
        "correlation_id": "e",
        "causation_id": None,
        "producer": "p",
        "producer_version": "1",
    }
    fields = {"action_id": "e", "message_id": "m", "kind": "answer", "params": {}, "intent": "x"}
    fastavro.schemaless_writer(buf, old.parsed, {"envelope": envelope, **fields})
    event = AvroCodec(InProcessRegistry()).decode(buf.getvalue())
    assert isinstance(event, ActionRequested)
    assert (event.channel, event.technical_level, event.kind) == ("web_chat", "basic", "answer")
    assert current_entries()["ActionRequested"].schema_id != old.schema_id
