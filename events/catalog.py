"""The schema catalogue: every event class with its ``.avsc`` file, parsed once.

Each event schema embeds the shared ``casestream.events.Envelope`` record by name;
:func:`standalone_schema` inlines it so the schema can be registered with any
Confluent-compatible registry on its own.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import fastavro

from events.actions import ActionCompleted, ActionRequested
from events.base import Event
from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    FeedbackReceived,
    MessageReceived,
)
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.delivery import EventRejected, ReplyDelivered
from events.enrichment import MessageEnriched
from events.knowledge import KnowledgeIngested

NAMESPACE = "casestream.events"
ENVELOPE_NAME = f"{NAMESPACE}.Envelope"

#: Every event type the system knows, by wire name.
EVENT_CLASSES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        ConversationStarted,
        MessageReceived,
        MessageEnriched,
        DecisionMade,
        ReplyRequested,
        ReplyDelivered,
        ClarificationRequested,
        CaseEscalated,
        ConversationClosed,
        FeedbackReceived,
        EventRejected,
        KnowledgeIngested,
        ActionRequested,
        ActionCompleted,
    )
}


@dataclass(frozen=True)
class SchemaEntry:
    """One event type's schema: raw JSON (envelope inlined), parsed form, id, version."""

    event_type: str
    version: int
    schema_id: int
    raw: dict[str, Any]
    parsed: Any

    @property
    def fullname(self) -> str:
        return f"{NAMESPACE}.{self.event_type}"


def _read_json(name: str, folder: str = "") -> dict[str, Any]:
    base = resources.files("events").joinpath("schemas")
    if folder:
        base = base.joinpath(folder)
    data: dict[str, Any] = json.loads(base.joinpath(f"{name}.avsc").read_text("utf-8"))
    return data


def standalone_schema(raw: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with the envelope reference replaced by the envelope record itself."""
    out = copy.deepcopy(raw)
    for field in out["fields"]:
        if field["type"] in (ENVELOPE_NAME, "Envelope"):
            field["type"] = copy.deepcopy(envelope)
    return out


def load_entry(event_type: str, folder: str = "") -> SchemaEntry:
    """Load and parse one event schema from ``events/schemas/[folder]``."""
    envelope = _read_json("Envelope", folder)
    raw = standalone_schema(_read_json(event_type, folder), envelope)
    parsed = fastavro.parse_schema(raw, named_schemas={})
    return SchemaEntry(
        event_type=event_type,
        version=int(raw["casestream.version"]),
        schema_id=int(raw["casestream.schema_id"]),
        raw=raw,
        parsed=parsed,
    )


@cache
def current_entries() -> dict[str, SchemaEntry]:
    """Current schema of every event type, keyed by event type."""
    return {name: load_entry(name) for name in EVENT_CLASSES}


def schema_files(folder: str = "") -> list[str]:
    """Event type names that have a schema file in ``events/schemas/[folder]``."""
    base = resources.files("events").joinpath("schemas")
    if folder:
        base = base.joinpath(folder)
    names = [p.name[: -len(".avsc")] for p in base.iterdir() if p.name.endswith(".avsc")]
    return sorted(n for n in names if n != "Envelope")
