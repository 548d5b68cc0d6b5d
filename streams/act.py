"""The act stage's I/O: performs an ``ActionRequested`` once and records the result.

Workflows (password reset, API diagnosis, invoices, refunds) go through
:meth:`agent.workflows.Workflows.perform`; ``kind="answer"`` retrieves passages from the
tenant's knowledge base and asks the grounded responder. The adapters are built on
first use by the factories :func:`streams.bootstrap.build_actor` passes in, and every
workflow runs on the request's clock (its ``occurred_at``), so a result depends only on
the request and the adapters' state. Nothing here raises: a failure is recorded as
``ActionCompleted(status="error")``.

Idempotency: the stage is at-least-once (Faust redelivers what it had not committed, and
always the last record after a restart), so ``action_id`` (within its conversation's
key, so no tenant ever gets another's result) is an idempotency key. Before
performing, the actor asks its :class:`ActionLedger` whether the action's result is
already recorded; if so it re-emits the recorded events (same ids, same bytes) and
performs nothing. :class:`ActionRecords` is the in-process ledger (the default);
:class:`KafkaActionLedger` reads the results back from the log itself
(``ActionCompleted`` on the enriched topic, an answer's reply on the outbound topic), so
what counts as done is exactly what the decider saw, across restarts and rebalances,
with no store of its own to keep in step with the log.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from events.actions import ActionCompleted, ActionRequested
from events.base import Event, caused_envelope
from events.codec import AvroCodec, DecodeError
from events.decisions import ReplyRequested
from processors.actions import mask

if TYPE_CHECKING:
    from agent.responder import Responder
    from agent.responder.types import TechnicalLevel
    from agent.workflows import Workflows
    from kb.retrieve import Retriever
    from streams.settings import Settings

log = logging.getLogger(__name__)

PRODUCER = "step.act"
PRODUCER_VERSION = "0.1.0"
MAX_REASON = 500
#: Retrieval results handed to the responder.
TOP_K = 4
#: A question shorter than this many words is searched together with the previous turn.
SHORT_QUESTION = 5


class Actor:
    """Performs actions with lazily built adapters (one set per worker)."""

    def __init__(
        self,
        workflows: Callable[[Callable[[], datetime]], Workflows],
        responder: Callable[[], Responder],
        retriever: Callable[[str], Retriever],
        ledger: Callable[[], ActionLedger] | None = None,
    ) -> None:
        """``ledger`` builds the record of performed actions on first use (default: an
        in-process :class:`ActionRecords`, which forgets on restart)."""
        self._make_workflows, self._make_responder = workflows, responder
        self._retriever = retriever
        self._make_ledger = ledger
        self._ledger: ActionLedger | None = None
        self._workflows: Workflows | None = None
        self._responder: Responder | None = None
        self._now: datetime | None = None
        #: the last reasons the ledger could not be read (the action was performed anyway)
        self.ledger_errors: deque[str] = deque(maxlen=10)

    @property
    def ledger(self) -> ActionLedger:
        if self._ledger is None:
            self._ledger = self._make_ledger() if self._make_ledger else ActionRecords()
        return self._ledger

    @property
    def workflows(self) -> Workflows:
        if self._workflows is None:
            self._workflows = self._make_workflows(self._clock)
        return self._workflows

    @property
    def responder(self) -> Responder:
        if self._responder is None:
            self._responder = self._make_responder()
        return self._responder

    def partitions_assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """A rebalance gave this worker the actions ``partitions`` (topic, number): the
        ledger takes their ends now; a request below one may be a redelivery."""
        self.ledger.partitions_assigned(partitions)

    def warm(self, tenants: Iterable[str] = ()) -> None:
        """Build the adapters now (workflows, responder, and each of ``tenants``'s
        knowledge base), so the first customer to need one does not wait for imports,
        fixtures and indexes: a worker calls it at start, off the event loop."""
        _ = self.workflows, self.responder
        for tenant in tenants:
            self._retriever(tenant).search("warm up", tenant=tenant, k=1)

    def _clock(self) -> datetime:
        if self._now is None:
            raise RuntimeError("workflow clock read outside an action")
        return self._now

    def act(self, request: ActionRequested, at: Position | None = None) -> list[Event]:
        """The result event (and, for an answer, the reply), never an exception.

        An action whose result the ledger holds is not performed again: its recorded
        events come back instead. ``at``: where the request was read (topic, partition,
        offset), which tells the ledger whether it can be a redelivery. A ledger that
        cannot be read is passed over (the action is performed, at least once, as
        without a ledger) and logged.
        """
        try:
            recorded = self.ledger.recorded(request, at)
        except Exception as exc:
            log.warning("action ledger unavailable, performing %s: %s", request.action_id, exc)
            self.ledger_errors.append(f"{type(exc).__name__}: {exc}"[:MAX_REASON])
            recorded = None
        if recorded is not None:
            return recorded
        outputs = self._act(request)
        try:
            self.ledger.remember(outputs)
        except Exception as exc:
            log.warning("action ledger did not record %s: %s", request.action_id, exc)
        return outputs

    def _act(self, request: ActionRequested) -> list[Event]:
        try:
            if request.kind == "answer":
                return self._answer(request)
            return [self._perform(request)]
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:MAX_REASON]
            return [completed(request, status="error", outcome="error", reason=reason)]

    def _perform(self, request: ActionRequested) -> ActionCompleted:
        from agent.workflows import ActionRequest

        self._now = request.envelope.occurred_at
        try:
            result = self.workflows.perform(
                ActionRequest(
                    kind=request.kind,  # type: ignore[arg-type]
                    tenant_id=request.envelope.tenant_id,
                    conversation_id=request.envelope.conversation_id,
                    params=dict(request.params),
                )
            )
        finally:
            self._now = None
        details = dict(result.details)
        if request.kind == "password_reset" and request.params.get("email"):
            details["to"] = mask(request.params["email"])
        return completed(
            request,
            status=result.status,
            outcome=result.outcome,
            details=details,
            reason=result.reason[:MAX_REASON],
        )

    def _answer(self, request: ActionRequested) -> list[Event]:
        from agent.responder import Passage, Question

        tenant = request.envelope.tenant_id
        question = request.params.get("question", "")
        history = tuple(h for h in request.params.get("history", "").split("\n") if h)
        query = question
        if len(question.split()) < SHORT_QUESTION and history:
            query = f"{history[-1]} {question}"
        retriever = self._retriever(tenant)
        found = retriever.search(query, tenant=tenant, k=TOP_K)
        if found.hits and found.hits[0].product_area != request.intent and "/" in request.intent:
            # the decider answers this intent (a resumed topic, a follow-up that names
            # another one): its own articles first, when it has any that match
            scoped = retriever.search(query, tenant=tenant, k=TOP_K, product_area=request.intent)
            if scoped.hits:
                found = scoped
        passages = tuple(
            Passage(
                id=h.passage_id,
                article_id=h.article_id,
                title=h.title,
                text=h.text,
                score=round(found.confidence * h.fused, 4),
            )
            for h in found.hits
        )
        level: TechnicalLevel = "technical" if request.technical_level == "technical" else "basic"
        answer = self.responder.answer(
            Question(
                text=question,
                tenant_id=tenant,
                intent=request.intent,
                passages=passages,
                history=history,
                technical_level=level,
            )
        )
        details = {
            "grounded": str(answer.grounded).lower(),
            "confidence": f"{found.confidence:.4f}",
            "fallbacks": "; ".join(answer.fallbacks),
            "flags": ",".join(answer.flags),
        }
        details = {k: v for k, v in details.items() if v}
        if answer.escalated:
            return [
                completed(
                    request,
                    status="escalated",
                    outcome="escalate",
                    details=details,
                    reason="no grounded answer",
                    link=answer.link,
                )
            ]
        done = completed(
            request,
            status="completed",
            outcome="answered",
            details=details,
            citations=tuple(answer.citations),
            link=answer.link,
        )
        env = caused_envelope(
            request.envelope, ReplyRequested, producer=PRODUCER, producer_version=PRODUCER_VERSION
        )
        reply = ReplyRequested(
            envelope=env,
            reply_id=env.event_id,
            message_id=request.message_id,
            channel=request.channel,
            text=answer.text,
            kind="answer",
        )
        return [reply, done]


def completed(request: ActionRequested, **fields: Any) -> ActionCompleted:
    """The ``ActionCompleted`` for ``request`` (id and time derive from the request)."""
    env = caused_envelope(
        request.envelope, ActionCompleted, producer=PRODUCER, producer_version=PRODUCER_VERSION
    )
    return ActionCompleted(
        envelope=env,
        action_id=request.action_id,
        message_id=request.message_id,
        kind=request.kind,
        status=fields.pop("status"),
        outcome=fields.pop("outcome"),
        details=fields.pop("details", {}),
        reason=fields.pop("reason", ""),
        **fields,
    )


#: Where a request was read: topic, partition, offset.
Position = tuple[str, int, int]


class ActionLedger(Protocol):
    """The record of performed actions the act stage consults before performing one."""

    def recorded(self, request: ActionRequested, at: Position | None = None) -> list[Event] | None:
        """The events recorded for ``request`` (an answer's reply first, then its
        ``ActionCompleted``), or None when it has not been performed. ``at``: where the
        request was read, when it was (a ledger may use it to tell a first delivery)."""
        ...

    def remember(self, outputs: Sequence[Event]) -> None:
        """Record what performing an action produced."""
        ...

    def partitions_assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """This worker was (re)assigned ``partitions`` of the actions topic."""
        ...


#: Where a result is kept: the conversation's key (``tenant/conversation``), action id.
RecordKey = tuple[str, str]
#: Results kept in memory (oldest dropped first). Only the not yet committed requests
#: can come again; the Kafka ledger reads back what it dropped if one does.
MAX_RECORDS = 10_000


class ActionRecords:
    """Recorded action results by conversation key and ``action_id`` (an id is only
    trusted within its own tenant's conversation): the ``ActionCompleted`` and, for an
    answer, the act stage's reply (the ``ReplyRequested`` the request caused).

    Fed with events, or with raw records of the enriched and outbound topics (other
    event types are skipped by their schema id after the first of each is decoded).
    A recorded result counts only for a request of the same kind: a replay whose policy
    asks for a different action under the same id gets no stale result.
    """

    def __init__(
        self, codec: AvroCodec | None = None, max_records: int | None = MAX_RECORDS
    ) -> None:
        """``max_records``: results kept, oldest dropped first (None: all, for a replay)."""
        self.codec = codec or AvroCodec()
        self.max_records = max_records
        self._done: OrderedDict[RecordKey, ActionCompleted] = OrderedDict()
        self._replies: OrderedDict[RecordKey, ReplyRequested] = OrderedDict()
        self._skip_ids: set[int] = set()
        #: Called with each evicted action id (the Kafka ledger narrows its coverage).
        self.on_evict: Callable[[RecordKey], None] | None = None

    def __len__(self) -> int:
        return len(self._done)

    def recorded(self, request: ActionRequested, at: Position | None = None) -> list[Event] | None:
        del at  # everything this process performed is here; the position adds nothing
        key = (request.key, request.action_id)
        done = self._done.get(key)
        if done is None or done.kind != request.kind:
            return None
        reply = self._replies.get(key)
        return [done] if reply is None else [reply, done]

    def remember(self, outputs: Sequence[Event]) -> None:
        for event in outputs:
            self.add(event)

    def partitions_assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        pass  # positions are not used

    def add(self, event: Event) -> bool:
        """Keep ``event`` if it records an action's result; True if it did."""
        if isinstance(event, ActionCompleted):
            at = (event.key, event.action_id)
            self._done[at] = event
            self._done.move_to_end(at)
            while self.max_records is not None and len(self._done) > self.max_records:
                evicted, _ = self._done.popitem(last=False)
                self._replies.pop(evicted, None)
                if self.on_evict is not None:
                    self.on_evict(evicted)
            return True
        if isinstance(event, ReplyRequested) and event.envelope.producer == PRODUCER:
            cause = event.envelope.causation_id
            if cause is not None:
                at = (event.key, cause)
                self._replies[at] = event
                self._replies.move_to_end(at)
                while self.max_records is not None and len(self._replies) > self.max_records:
                    self._replies.popitem(last=False)
                return True
        return False

    def add_value(self, value: bytes | None) -> Event | None:
        """Keep the event in a raw record's ``value`` if it records a result (returned)."""
        if value is None or len(value) < SCHEMA_HEADER.size:
            return None
        schema_id = SCHEMA_HEADER.unpack_from(value)[1]
        if schema_id in self._skip_ids:
            return None
        try:
            event = self.codec.decode(value)
        except DecodeError:
            return None
        if not isinstance(event, ActionCompleted | ReplyRequested):
            self._skip_ids.add(schema_id)
            return None
        return event if self.add(event) else None

    def add_values(self, values: Iterable[bytes | None]) -> int:
        """Feed raw record values; returns how many recorded a result."""
        return sum(1 for v in values if self.add_value(v) is not None)


#: Confluent framing: magic byte, 4-byte schema id.
SCHEMA_HEADER = struct.Struct(">bI")
#: How far before a request's time the log is read back for its result: covers clock
#: skew between the machines that wrote the request and the result.
READ_BACK_MARGIN_S = 120.0


class KafkaActionLedger:
    """Action results read back from the log (confluent-kafka, assigned partitions only).

    A result is written to the partition of its conversation's key on the enriched topic
    (``ActionCompleted``) and, for an answer, the outbound topic (the reply). Before a
    request is performed, that partition of both topics is read from where this ledger
    last stopped to the current end; a partition read for the first time (after a start,
    or for a request older than what it covers) starts at the request's time less
    :data:`READ_BACK_MARGIN_S`. A redelivered request is always at or after the oldest
    uncommitted one, and its result was written after it, so the result is found if it is
    on the log; what another worker wrote while it owned the partition is read too.
    Reading costs one watermark query per topic and the records written to that partition
    since the last action, so it is done only for a request that can be a redelivery:
    one read from an actions partition below the end that partition had when it was
    assigned to this worker (:meth:`partitions_assigned`; without an assignment, when the
    ledger first saw a request from it). A request appended after that was delivered to nobody
    before this worker, so the results this process recorded in memory are complete for
    it: in steady state the act stage never reads the log back.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        codec: AvroCodec | None = None,
        *,
        margin_s: float = READ_BACK_MARGIN_S,
        timeout_s: float = 10.0,
        max_records: int = MAX_RECORDS,
    ) -> None:
        from confluent_kafka import Consumer

        self.topics = tuple(topics)
        self.records = ActionRecords(codec, max_records)
        self.records.on_evict = self._evicted
        self.margin_ms = int(margin_s * 1000)
        self.timeout_s = timeout_s
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "casestream-act-ledger",  # never joins: partitions are assigned
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
            }
        )
        self._partitions: dict[str, int] = {}
        #: (topic, partition) -> next offset to read, and the time from which the
        #: records index is complete for it.
        self._next: dict[tuple[str, int], int] = {}
        self._since: dict[tuple[str, int], int] = {}
        self._where: dict[RecordKey, tuple[tuple[str, int], int]] = {}
        #: actions (topic, partition) -> its end offset when first seen: requests from
        #: there are first deliveries (no read-back needed)
        self._first_new: dict[tuple[str, int], int] = {}
        self.records_read = 0
        self.read_backs = 0
        #: broker calls made again after a retriable error
        self.retries = 0

    @classmethod
    def from_settings(cls, settings: Settings, codec: AvroCodec | None = None) -> KafkaActionLedger:
        from streams.topics import Topics

        topics = Topics(settings.topic_prefix)
        return cls(settings.kafka_bootstrap, (topics.enriched, topics.outbound), codec)

    def close(self) -> None:
        self._consumer.close()

    def recorded(self, request: ActionRequested, at: Position | None = None) -> list[Event] | None:
        found = self.records.recorded(request)
        if found is not None or (at is not None and self.first_delivery(at)):
            return found
        self.read_backs += 1
        key = request.key.encode()
        want = int(request.envelope.occurred_at.timestamp() * 1000) - self.margin_ms
        self._catch_up([(t, self._partition(t, key)) for t in self.topics], want)
        return self.records.recorded(request)

    def remember(self, outputs: Sequence[Event]) -> None:
        self.records.remember(outputs)

    def first_delivery(self, at: Position) -> bool:
        """Was the request at ``at`` appended after its partition came to this worker
        (so delivered to no one before)? The partition's end is taken when it is assigned
        (:meth:`partitions_assigned`), else when its first request is seen."""
        topic, partition, offset = at
        first_new = self._first_new.get((topic, partition))
        if first_new is None:
            first_new = max(self._end(topic, partition), offset + 1)
            first_new = self._first_new.setdefault((topic, partition), first_new)
        return offset >= first_new

    def partitions_assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """A rebalance: each assigned actions partition's end is taken now, so only the
        requests already on it (which another worker may have read) are read back."""
        self._first_new.clear()
        for topic, partition in partitions:
            self._first_new[(topic, partition)] = self._end(topic, partition)

    def _end(self, topic: str, partition: int) -> int:
        from confluent_kafka import TopicPartition

        _, high = self._retrying(
            self._consumer.get_watermark_offsets,
            TopicPartition(topic, partition),
            timeout=self.timeout_s,
            cached=False,
        )
        return int(high)

    def _retrying(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call`` again while the broker answers with a retriable error (a partition
        whose leader is moving or not elected yet, as just after a topic is created), for
        up to :attr:`timeout_s`; then the last error is raised."""
        from confluent_kafka import KafkaError, KafkaException

        transient = {
            KafkaError.NOT_LEADER_FOR_PARTITION,
            KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            KafkaError._UNKNOWN_PARTITION,
            KafkaError._TIMED_OUT,
            KafkaError._TRANSPORT,
        }
        deadline = time.monotonic() + self.timeout_s
        pause = 0.05
        while True:
            try:
                return call(*args, **kwargs)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = isinstance(error, KafkaError) and (
                    error.retriable() or error.code() in transient
                )
                if not retriable or time.monotonic() + pause > deadline:
                    raise
                self.retries += 1
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _partition(self, topic: str, key: bytes) -> int:
        from aiokafka.partitioner import murmur2

        count = self._partitions.get(topic)
        if count is None:
            meta = self._retrying(self._consumer.list_topics, topic, timeout=self.timeout_s)
            count = len(meta.topics[topic].partitions)
            if count == 0:
                raise RuntimeError(f"topic {topic} has no partitions")
            self._partitions[topic] = count
        # the producers' partitioner (aiokafka's default, the Java client's murmur2)
        return int((murmur2(key) & 0x7FFFFFFF) % count)

    def _catch_up(self, tps: list[tuple[str, int]], want_ms: int) -> None:
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        todo: dict[tuple[str, int], int] = {}
        for tp in tps:
            high = self._end(*tp)
            start = self._next.get(tp)
            if start is None or want_ms < self._since.get(tp, want_ms):
                (found,) = self._retrying(
                    self._consumer.offsets_for_times,
                    [TopicPartition(tp[0], tp[1], max(0, want_ms))],
                    timeout=self.timeout_s,
                )
                start = high if found.offset < 0 else found.offset
                self._since[tp] = want_ms
            self._next[tp] = start
            if start < high:
                todo[tp] = high
        if not todo:
            return
        self._consumer.assign([TopicPartition(t, p, self._next[(t, p)]) for t, p in todo])
        deadline = time.monotonic() + self.timeout_s
        try:
            while todo:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading back {sorted(todo)} took over {self.timeout_s}s")
                for msg in self._consumer.consume(500, timeout=0.5):
                    tp = (msg.topic(), msg.partition())
                    if msg.error():
                        if msg.error().code() == KafkaError._PARTITION_EOF:
                            todo.pop(tp, None)
                            continue
                        raise KafkaException(msg.error())
                    self._next[tp] = msg.offset() + 1
                    self.records_read += 1
                    event = self.records.add_value(msg.value())
                    if isinstance(event, ActionCompleted):
                        where = (tp, msg.timestamp()[1])
                        self._where[(event.key, event.action_id)] = where
                    if self._next[tp] >= todo.get(tp, 0):
                        todo.pop(tp, None)
        finally:
            self._consumer.unassign()

    def _evicted(self, at: RecordKey) -> None:
        where = self._where.pop(at, None)
        if where is not None:  # the index no longer covers this partition before then
            tp, timestamp_ms = where
            self._since[tp] = max(self._since.get(tp, 0), timestamp_ms + 1)
