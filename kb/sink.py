"""Where ingest records its ``KnowledgeIngested`` events: the event-sink port and adapters.

* :class:`ArchiveSink` (the embedded default): an Avro container file of raw topic
  records (``replay.archive``'s format, Confluent-framed values), so ``casestream replay
  --from-file`` style tools read it like an archived topic. Events whose id is already in
  the archive are skipped, which makes re-ingest idempotent.
* :class:`KafkaSink`: the ``knowledge`` topic through ``streams.kafka.EventPublisher``;
  readers deduplicate by event id (a re-ingest re-sends the same ids).
* :class:`MemorySink`: keeps the events in a list (tests, dry runs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from events.codec import AvroCodec
from events.knowledge import KnowledgeIngested
from replay.archive import read_archive, write_archive
from streams.steps import Record
from streams.topics import Topics


class EventSink(Protocol):
    """Records knowledge events durably."""

    def emit(self, events: Sequence[KnowledgeIngested]) -> int:
        """Record ``events``; returns how many were newly recorded."""
        ...


class MemorySink:
    def __init__(self) -> None:
        self.events: list[KnowledgeIngested] = []

    def emit(self, events: Sequence[KnowledgeIngested]) -> int:
        seen = {e.event_id for e in self.events}
        new = [e for e in events if e.event_id not in seen]
        self.events.extend(new)
        return len(new)


class ArchiveSink:
    """Appends events to an Avro container archive (rewritten atomically)."""

    def __init__(self, path: Path, topic_prefix: str = "casestream") -> None:
        self.path = path
        self.topics = Topics(topic_prefix)
        self.codec = AvroCodec()

    def records(self) -> list[Record]:
        return list(read_archive(self.path)) if self.path.is_file() else []

    def events(self) -> list[KnowledgeIngested]:
        """Every event in the archive, in order."""
        out: list[KnowledgeIngested] = []
        for record in self.records():
            if record.value is not None:
                event = self.codec.decode(record.value)
                if isinstance(event, KnowledgeIngested):
                    out.append(event)
        return out

    def emit(self, events: Sequence[KnowledgeIngested]) -> int:
        existing = self.records()
        seen = {e.event_id for e in self.events()}
        new: list[Record] = []
        for event in events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            topic = self.topics.for_event(event)
            new.append(
                Record(
                    topic=topic,
                    partition=0,
                    offset=len(existing) + len(new),
                    key=event.key.encode(),
                    value=self.codec.encode(event, topic),
                    timestamp_ms=int(event.envelope.occurred_at.timestamp() * 1000),
                )
            )
        if new:
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            write_archive(tmp, [*existing, *new])
            os.replace(tmp, self.path)
        return len(new)


class KafkaSink:
    """Publishes to the ``knowledge`` topic and waits for delivery."""

    def __init__(self, bootstrap: str, topic_prefix: str = "casestream") -> None:
        from streams.kafka import EventPublisher
        from streams.settings import load_settings

        settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix)
        self.publisher = EventPublisher(settings)

    def emit(self, events: Sequence[KnowledgeIngested]) -> int:
        for event in events:
            self.publisher.publish(event)
        self.publisher.flush()
        return len(events)
