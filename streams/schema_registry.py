"""Adapter: a Confluent-compatible schema registry over HTTP, behind ``SchemaRegistry``.

Uses confluent-kafka's own ``SchemaRegistryClient``. Subjects follow
TopicRecordNameStrategy (``<topic>-<record full name>``) because several event types
share a topic. Ids come from the registry; the committed schema files are what is
registered.
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from events.catalog import SchemaEntry


class ConfluentRegistry:
    """``events.registry.SchemaRegistry`` over a Confluent-compatible HTTP registry."""

    def __init__(self, url: str, **conf: Any) -> None:
        self.client = SchemaRegistryClient({"url": url, **conf})
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def id_for(self, entry: SchemaEntry, subject: str) -> int:
        key = (subject, entry.fullname + f"@{entry.version}")
        schema_id = self._ids.get(key)
        if schema_id is None:
            schema = Schema(json.dumps(entry.raw), schema_type="AVRO")
            schema_id = int(self.client.register_schema(subject, schema))
            self._ids[key] = schema_id
            self._schemas[schema_id] = entry.raw
        return schema_id

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        cached = self._schemas.get(schema_id)
        if cached is None:
            schema = self.client.get_schema(schema_id)
            cached = json.loads(schema.schema_str)
            self._schemas[schema_id] = cached
        return cached

    def is_compatible(self, entry: SchemaEntry, subject: str) -> bool:
        """Ask the registry whether ``entry`` may be registered next under ``subject``."""
        schema = Schema(json.dumps(entry.raw), schema_type="AVRO")
        return bool(self.client.test_compatibility(subject, schema))
