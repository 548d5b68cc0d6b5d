"""The Confluent registry adapter, driven by confluent-kafka's real client over HTTP."""

from __future__ import annotations

import copy
import struct

import pytest

from events.catalog import current_entries
from events.codec import AvroCodec, subject_name
from streams.schema_registry import ConfluentRegistry
from tests.fakes.schema_registry import FakeSchemaRegistry
from tests.unit.test_events import samples

pytestmark = pytest.mark.integration


def test_events_round_trip_with_ids_from_the_registry() -> None:
    with FakeSchemaRegistry() as registry:
        writer = AvroCodec(ConfluentRegistry(registry.url))
        encoded = [(e, writer.encode(e, "casestream.conversations.inbound")) for e in samples()]
        ids = {struct.unpack(">bI", data[:5])[1] for _, data in encoded}
        assert len(ids) == len(encoded)  # one registered schema per event type
        assert ids != {e.schema_id for e in current_entries().values()}  # server's, not ours
        reader = AvroCodec(ConfluentRegistry(registry.url))  # knows nothing: fetches by id
        for event, data in encoded:
            assert reader.decode(data) == event
        subjects = set(registry.state.subjects)
        assert subject_name("casestream.conversations.inbound", "MessageReceived") in subjects
        assert any(r.startswith("GET /schemas/ids/") for r in registry.state.requests)


def test_registry_checks_compatibility_of_the_next_version() -> None:
    with FakeSchemaRegistry() as registry:
        adapter = ConfluentRegistry(registry.url)
        entry = current_entries()["FeedbackReceived"]
        subject = subject_name("t", "FeedbackReceived")
        adapter.id_for(entry, subject)
        compatible = copy.deepcopy(entry)
        compatible.raw["fields"].append({"name": "channel", "type": "string", "default": "x"})
        assert adapter.is_compatible(compatible, subject)
        breaking = copy.deepcopy(entry)
        breaking.raw["fields"].append({"name": "channel", "type": "string"})
        assert not adapter.is_compatible(breaking, subject)
