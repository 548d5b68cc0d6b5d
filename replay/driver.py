"""The log driver: the live pipeline's steps, run in-process over a sequence of records.

Inbound records (from a Kafka topic read from an offset or time, or from an Avro
archive) go through ``Steps.enrich_record``; every output is then routed by topic, as
the live agents would consume it, until nothing is left to route: an enriched record
goes through ``Steps.decide_record`` with its conversation's state, an action record
through ``Steps.act_record`` (whose ``ActionCompleted`` is an enriched record again).
Outputs are routed first in, first out, so a conversation's records reach each stage in
the order they were written. Same code as the Faust agents, so both drivers emit the
same decisions.
"""

from __future__ import annotations

from collections import deque
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
    action_offsets: dict[int, int] = field(default_factory=dict)

    def run(self, records: Iterable[Record]) -> Iterator[Output]:
        """Yield every output (enriched, decisions, actions, replies, cases, dead letters)
        in the order it is produced; each input is followed through until quiescent."""
        topics = self.steps.topics
        for record in records:
            pending: deque[Output] = deque()
            for out in self.steps.enrich_record(record):
                yield out
                pending.append(out)
            while pending:
                out = pending.popleft()
                if out.topic == topics.enriched:
                    produced = self._decide(out, record)
                elif out.topic == topics.actions:
                    produced = self.steps.act_record(self._record(out, record, self.action_offsets))
                else:
                    continue
                for new in produced:
                    yield new
                    pending.append(new)

    @staticmethod
    def _record(out: Output, cause: Record, offsets: dict[int, int]) -> Record:
        offset = offsets.get(cause.partition, 0)
        offsets[cause.partition] = offset + 1
        return Record(out.topic, cause.partition, offset, out.key, out.value, cause.timestamp_ms)

    def _decide(self, enriched: Output, cause: Record) -> list[Output]:
        record = self._record(enriched, cause, self.enriched_offsets)
        key = enriched.key
        state, outputs = self.steps.decide_record(self.states.get(key, ConversationState()), record)
        self.states[key] = state
        return outputs
