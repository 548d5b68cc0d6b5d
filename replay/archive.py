"""Avro container files holding raw topic records: the log, copied byte for byte.

Each archived record keeps its topic, partition, offset, timestamp, key and the value
exactly as it was on Kafka (Confluent-framed Avro, or garbage for dead letters), so a
replay from an archive sees what a replay from the topic would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import fastavro

from streams.steps import Record

ARCHIVE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "ArchivedRecord",
    "namespace": "casestream.archive",
    "doc": "One Kafka record, byte for byte.",
    "fields": [
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "timestamp_ms", "type": "long"},
        {"name": "key", "type": ["null", "bytes"]},
        {"name": "value", "type": ["null", "bytes"]},
    ],
}
_PARSED = fastavro.parse_schema(ARCHIVE_SCHEMA)


def write_archive(path: Path, records: Iterable[Record], codec: str = "deflate") -> int:
    """Write ``records`` to an Avro container file; returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal count
        for r in records:
            count += 1
            yield {
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp_ms": r.timestamp_ms,
                "key": r.key,
                "value": r.value,
            }

    with path.open("wb") as fh:
        fastavro.writer(fh, _PARSED, rows(), codec=codec)
    return count


def read_archive(path: Path) -> Iterator[Record]:
    """Records of an archive file, in the order they were written."""
    with path.open("rb") as fh:
        for row in fastavro.reader(fh):
            assert isinstance(row, dict)
            yield Record(
                row["topic"],
                row["partition"],
                row["offset"],
                row["key"],
                row["value"],
                row["timestamp_ms"],
            )
