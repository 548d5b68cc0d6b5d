"""The log driver: the live pipeline's steps, run in-process over a sequence of records.

Inbound records (from a Kafka topic read from an offset or time, or from an Avro
archive) go through ``Steps.enrich_record``; every output is then routed by topic, as
the live agents would consume it, until nothing is left to route: an enriched record
goes through ``Steps.decide_record`` with its conversation's state, an action record
through ``Steps.act_record`` (whose ``ActionCompleted`` is an enriched record again).
Outputs are routed first in, first out, so a conversation's records reach each stage in
the order they were written. Same code as the Faust agents, so both drivers emit the
same decisions.

Replaying the log never performs an action again: given ``recorded`` (the results on
the log, see :func:`recorded_from_kafka` and :func:`recorded_from_archives`), an
``ActionRequested`` is answered with the events recorded for its ``action_id`` (its
``ActionCompleted`` and, for an answer, the reply) instead of the act stage, so no mail
is sent, no refund issued and no LLM called, and every decision comes out as it did. A
request with no recorded result (the act stage never finished it, or a changed policy
asks for a new action) yields nothing, as it did live; its id is kept in
``unrecorded``. Without ``recorded`` the driver performs actions (the demo, the
conversation evaluation).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from events.actions import ActionRequested
from events.codec import AvroCodec
from processors.conversation import ConversationState
from streams.act import ActionRecords
from streams.settings import Settings
from streams.steps import Output, Record, Steps


@dataclass
class LogDriver:
    """Runs ``steps`` over inbound records, keeping conversation states in memory."""

    steps: Steps
    states: dict[bytes, ConversationState] = field(default_factory=dict)
    enriched_offsets: dict[int, int] = field(default_factory=dict)
    action_offsets: dict[int, int] = field(default_factory=dict)
    recorded: ActionRecords | None = None
    unrecorded: list[str] = field(default_factory=list)

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
                    produced = self._act(out, record)
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

    def _act(self, action: Output, cause: Record) -> list[Output]:
        record = self._record(action, cause, self.action_offsets)
        if self.recorded is None:
            return self.steps.act_record(record)
        request = action.event
        if not isinstance(request, ActionRequested):
            return []
        events = self.recorded.recorded(request)
        if events is None:
            self.unrecorded.append(request.action_id)
            return []
        return [self.steps.output(e) for e in events]


def recorded_from_records(records: Iterable[Record], codec: AvroCodec) -> ActionRecords:
    """The action results among ``records`` (of the enriched and outbound topics)."""
    recorded = ActionRecords(codec, max_records=None)
    recorded.add_values(r.value for r in records)
    return recorded


def recorded_from_archives(paths: Iterable[Path], codec: AvroCodec) -> ActionRecords:
    """The action results in archives of the enriched and outbound topics."""
    from replay.archive import read_archive

    recorded = ActionRecords(codec, max_records=None)
    for path in paths:
        recorded.add_values(r.value for r in read_archive(path))
    return recorded


def recorded_from_kafka(settings: Settings, codec: AvroCodec) -> ActionRecords:
    """The action results on the enriched and outbound topics, read to their ends."""
    from streams.kafka import read_topic
    from streams.topics import Topics

    names = Topics(settings.topic_prefix)
    recorded = ActionRecords(codec, max_records=None)
    for topic in (names.enriched, names.outbound):
        recorded.add_values(r.value for r in read_topic(settings, topic))
    return recorded
