"""The processing steps both drivers run: bytes in, bytes out, dead letters on failure.

The live driver (Faust, ``streams.app``) and the log driver (``replay.driver``) call the
same three steps, so they cannot disagree: ``enrich_record`` for the inbound topic,
``decide_record`` for the enriched topic and ``act_record`` for the actions topic (whose
``ActionCompleted`` goes back to the enriched topic). A record that does not decode, or whose
processing raises, becomes an ``EventRejected`` for the dead-letter topic and the
stream goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from events.actions import ActionRequested
from events.base import Envelope, Event, derive_event_id
from events.codec import AvroCodec, DecodeError
from events.conversation import MessageReceived
from events.delivery import EventRejected
from processors.conversation import ConversationState, handle
from processors.enrich import enrich
from processors.ports import IntentSentimentModel, Prediction
from streams.topics import PASS_THROUGH, Topics

if TYPE_CHECKING:
    from streams.act import Actor

PRODUCER_VERSION = "0.1.0"
MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class Record:
    """One record read from a topic (or an archive of one)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Output:
    """One record to write: the event, its topic, key and encoded value."""

    topic: str
    key: bytes
    value: bytes
    event: Event


class Steps:
    """Decode, run a pure processor, encode; dead-letter anything that fails."""

    def __init__(
        self,
        codec: AvroCodec,
        topics: Topics,
        model: IntentSentimentModel,
        actor: Callable[[], Actor] | None = None,
    ) -> None:
        """``actor`` builds the act stage's adapters on first use (default: from the
        environment's settings, see :func:`streams.bootstrap.build_actor`)."""
        self.codec = codec
        self.topics = topics
        self.model = model
        self._make_actor = actor
        self._actor: Actor | None = None
        self.on_rejected: Callable[[EventRejected], None] | None = None

    def output(self, event: Event) -> Output:
        topic = self.topics.for_event(event)
        return Output(topic, event.key.encode(), self.codec.encode(event, topic), event)

    def rejected(self, record: Record, stage: str, exc: BaseException) -> Output:
        """The dead letter for ``record``; its id derives from the record's position."""
        tenant, conversation = _split_key(record.key)
        position = f"{record.topic}:{record.partition}:{record.offset}"
        event_id = derive_event_id(position, f"EventRejected/{stage}")
        event = EventRejected(
            envelope=Envelope(
                event_id=event_id,
                event_type="EventRejected",
                schema_version=EventRejected.SCHEMA_VERSION,
                occurred_at=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
                tenant_id=tenant,
                conversation_id=conversation,
                correlation_id=event_id,
                causation_id=None,
                producer=f"step.{stage}",
                producer_version=PRODUCER_VERSION,
            ),
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            stage=stage,
            reason=str(exc)[:MAX_REASON] or type(exc).__name__,
            error_type=type(exc).__name__,
            original_key=record.key,
            original_value=record.value,
        )
        if self.on_rejected is not None:
            self.on_rejected(event)
        return self.output(event)

    def decode(self, record: Record) -> Event | Output:
        try:
            return self.codec.decode(record.value)
        except DecodeError as exc:
            return self.rejected(record, "decode", exc)

    def enrich_record(self, record: Record) -> list[Output]:
        """Inbound record -> MessageEnriched (or the lifecycle event passed through)."""
        return self.enrich_records([record])

    def enrich_records(self, records: list[Record]) -> list[Output]:
        """A batch of inbound records, scored by the model in one call, outputs in order.

        If the batch call fails, each message is retried alone so that one bad message
        dead-letters only itself.
        """
        decoded = [self.decode(r) for r in records]
        messages = [e for e in decoded if isinstance(e, MessageReceived)]
        predictions: dict[int, Prediction] = {}
        if len(messages) > 1:
            try:
                batch = self.model.predict([m.text for m in messages])
                predictions = {id(m): p for m, p in zip(messages, batch, strict=True)}
            except Exception:
                predictions = {}
        outputs: list[Output] = []
        for record, event in zip(records, decoded, strict=True):
            if isinstance(event, Output):
                outputs.append(event)
                continue
            try:
                if isinstance(event, MessageReceived):
                    prediction = predictions.get(id(event))
                    if prediction is None:
                        prediction = self.model.predict([event.text])[0]
                    outputs.append(self.output(enrich(event, prediction, self.model.info)))
                elif isinstance(event, PASS_THROUGH):
                    key = event.key.encode()
                    outputs.append(Output(self.topics.enriched, key, record.value or b"", event))
            except Exception as exc:
                outputs.append(self.rejected(record, "enrich", exc))
        return outputs

    def decide_record(
        self, state: ConversationState, record: Record
    ) -> tuple[ConversationState, list[Output]]:
        """Enriched record + conversation state -> new state and the decision events."""
        event = self.decode(record)
        if isinstance(event, Output):
            return state, [event]
        try:
            new_state, events = handle(state, event)
            return new_state, [self.output(e) for e in events]
        except Exception as exc:
            return state, [self.rejected(record, "decide", exc)]

    @property
    def actor(self) -> Actor:
        if self._actor is None:
            if self._make_actor is None:
                from streams.bootstrap import build_actor
                from streams.settings import load_settings

                self._actor = build_actor(load_settings())
            else:
                self._actor = self._make_actor()
        return self._actor

    def act_record(self, record: Record) -> list[Output]:
        """Actions record -> ActionCompleted (to the enriched topic), plus the reply of a
        knowledge-base answer. A failing action is recorded, not dead-lettered."""
        event = self.decode(record)
        if isinstance(event, Output):
            return [event]
        if not isinstance(event, ActionRequested):
            return []
        try:
            at = (record.topic, record.partition, record.offset)
            return [self.output(e) for e in self.actor.act(event, at)]
        except Exception as exc:
            return [self.rejected(record, "act", exc)]


def _split_key(key: bytes | None) -> tuple[str, str]:
    text = (key or b"").decode("utf-8", "replace")
    tenant, sep, conversation = text.partition("/")
    return (tenant, conversation) if sep and tenant and conversation else ("unknown", text)
