"""Schema-registry port and the in-process registry (ids from the schema files).

The port is what the codec needs: an id for a schema it writes with, and the schema
for an id it reads. ``streams.schema_registry`` adapts a Confluent-compatible
registry over HTTP to the same port.
"""

from __future__ import annotations

from typing import Any, Protocol

from events.catalog import SchemaEntry, current_entries, load_entry


class SchemaRegistry(Protocol):
    """Where schema ids come from and resolve to."""

    def id_for(self, entry: SchemaEntry, subject: str) -> int:
        """Id under which ``entry`` is registered for ``subject`` (registering if needed)."""
        ...

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        """The writer schema (Avro JSON as a dict) registered under ``schema_id``."""
        ...


class UnknownSchemaId(KeyError):
    """A record names a schema id the registry does not know."""


class InProcessRegistry:
    """Registry whose ids are the ``casestream.schema_id`` of the committed schema files.

    It knows the current schemas and any older versions kept in
    ``events/schemas/history/`` so that old records still decode.
    """

    def __init__(self, history: tuple[str, ...] = ("history/v1",)) -> None:
        self._by_id: dict[int, dict[str, Any]] = {}
        for folder in history:
            for name in current_entries():
                try:
                    old = load_entry(name, folder)
                except FileNotFoundError:
                    continue
                self._by_id.setdefault(old.schema_id, old.raw)
        for entry in current_entries().values():
            self._by_id[entry.schema_id] = entry.raw

    def id_for(self, entry: SchemaEntry, subject: str) -> int:
        return entry.schema_id

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise UnknownSchemaId(f"schema id {schema_id} is not registered") from None
