"""The log driver: the live pipeline's steps, run in-process over a sequence of records.

Inbound records (from a Kafka topic read from an offset or time, or from an Avro
archive) go through ``Steps.enrich_record``; each enriched output is fed, as a record
of the enriched topic, through ``Steps.decide_record`` with the conversation's state.
Same code as the Faust agents, so both drivers emit the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from processors.conversation import ConversationState
from streams.steps import Output, Record, Steps


@dataclass
class LogDriver:
    """Runs ``steps`` over inbound records, keeping conversation states in memory."""

    steps: Steps
    states: dict[bytes, ConversationState] = field(default_factory=dict)
    enriched_offsets: dict[int, int] = field(default_factory=dict)

    def run(self, records: Iterable[Record]) -> Iterator[Output]:
        """Yield every output (enriched, decisions, replies, cases, dead letters) in order."""
        for record in records:
            for out in self.steps.enrich_record(record):
                yield out
                if out.topic == self.steps.topics.enriched:
                    yield from self._decide(out, record)

    def _decide(self, enriched: Output, cause: Record) -> Iterator[Output]:
        offset = self.enriched_offsets.get(cause.partition, 0)
        self.enriched_offsets[cause.partition] = offset + 1
        record = Record(
            enriched.topic,
            cause.partition,
            offset,
            enriched.key,
            enriched.value,
            cause.timestamp_ms,
        )
        key = enriched.key
        state, outputs = self.steps.decide_record(self.states.get(key, ConversationState()), record)
        self.states[key] = state
        yield from outputs
