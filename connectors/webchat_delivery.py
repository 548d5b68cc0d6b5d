"""Reply delivery: a consumer thread on the outbound topic feeding the :class:`ReplyHub`.

For each batch the thread decodes ``ReplyRequested`` events of the web-chat channel,
hands them to the hub on the event loop (sockets live there), publishes one
``ReplyDelivered`` per reply (id derived from the reply, so a re-run writes the same
ids), waits until those are on Kafka, and only then stores the batch's offsets:
delivery is at-least-once, and the hub's reply-id dedup absorbs repeats within a
process.

All replicas share the consumer group ``<app_id>-webchat``, so each receives only its
share of the partitions; a reply whose socket is connected to another replica is
queued there. Run one replica (or give each its own group) until replies are routed
by the session-state projection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors.webchat_hub import DeliveryReport, ReplyHub
from connectors.webchat_models import CHANNEL
from events.base import caused_envelope
from events.codec import AvroCodec, DecodeError
from events.decisions import ReplyRequested
from events.delivery import ReplyDelivered
from streams import metrics
from streams.kafka import EventPublisher
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

PRODUCER = "connector.webchat"
PRODUCER_VERSION = "0.1.0"
STAGE = "webchat_outbound"
BATCH = 100
POLL_S = 0.25
FLUSH_S = 10.0
DISPATCH_TIMEOUT_S = 30.0


def delivered_event(report: DeliveryReport) -> ReplyDelivered:
    """The ``ReplyDelivered`` for ``report``; its id derives from the reply's id."""
    reply = report.reply
    return ReplyDelivered(
        envelope=caused_envelope(
            reply.envelope,
            ReplyDelivered,
            producer=PRODUCER,
            producer_version=PRODUCER_VERSION,
            index=report.index,
        ),
        reply_id=reply.reply_id,
        channel=CHANNEL,
        status=report.status,
        detail=report.detail,
    )


class OutboundConsumer:
    """The reply consumer thread. ``offset_reset`` applies when the group has no offset.

    With ``"latest"`` the starting offsets are resolved to the high watermarks inside the
    assignment callback, so :meth:`wait_assigned` returning means every reply produced
    afterwards will be seen.
    """

    def __init__(
        self,
        settings: Settings,
        hub: ReplyHub,
        loop: asyncio.AbstractEventLoop,
        *,
        codec: AvroCodec,
        publisher: EventPublisher,
        offset_reset: str = "latest",
        group_id: str | None = None,
    ) -> None:
        self.topic = Topics(settings.topic_prefix).outbound
        self._hub = hub
        self._loop = loop
        self._codec = codec
        self._publisher = publisher
        self._offset_reset = offset_reset
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": group_id or f"{settings.app_id}-webchat",
                "auto.offset.reset": offset_reset,
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
            }
        )
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webchat-outbound", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop polling, finish the batch in hand and close (commits stored offsets)."""
        self._stop.set()
        self._thread.join(timeout)

    @property
    def assigned(self) -> bool:
        return self._assigned.is_set() and self._thread.is_alive()

    def wait_assigned(self, timeout: float) -> bool:
        return self._assigned.wait(timeout)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if self._offset_reset == "latest" and partitions:
            try:
                committed = consumer.committed(partitions, timeout=10)
                for tp in committed:
                    if tp.offset < 0:
                        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
                        tp.offset = high
                partitions = committed
            except Exception as exc:  # fall back to the broker-side reset
                log.warning("could not resolve start offsets of %s: %r", self.topic, exc)
        consumer.assign(partitions)
        self._assigned.set()

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._assigned.clear()
        consumer.unassign()

    # --- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception:
                    log.exception("web-chat reply consumer step failed; retrying")
                    self._stop.wait(1.0)
        finally:
            self._assigned.clear()
            try:
                self._consumer.close()
            except Exception:
                log.exception("closing the web-chat reply consumer failed")

    def _step(self) -> None:
        messages = self._consumer.consume(BATCH, POLL_S)
        replies: list[ReplyRequested] = []
        done: list[Any] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("outbound consumer error: %s", err)
                continue
            done.append(msg)
            metrics.EVENTS_IN.labels(msg.topic(), STAGE).inc()
            try:
                event = self._codec.decode(msg.value())
            except DecodeError as exc:
                # The worker dead-letters undecodable records on its own topics.
                metrics.DEAD_LETTERS.labels(STAGE, type(exc).__name__).inc()
                log.warning(
                    "skipping undecodable record %s[%d]@%d: %s",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
                continue
            if isinstance(event, ReplyRequested) and event.channel == CHANNEL:
                replies.append(event)
        reports: list[DeliveryReport] = []
        if replies:
            future = asyncio.run_coroutine_threadsafe(self._hub.dispatch_all(replies), self._loop)
            try:
                reports.extend(future.result(DISPATCH_TIMEOUT_S))
            except BaseException:
                self._rewind(done)  # redo the batch; the hub drops what it already saw
                raise
        reports.extend(self._hub.take_reports())
        if reports:
            if not self._publish([delivered_event(r) for r in reports]):
                return  # stopping: leave the offsets unstored so the batch is redone
            for r in reports:
                metrics.REPLIES_DELIVERED.labels(r.status).inc()
        for msg in done:
            self._consumer.store_offsets(message=msg)

    def _rewind(self, messages: list[Any]) -> None:
        """Seek back to the first of ``messages`` in each partition."""
        first: dict[tuple[str, int], int] = {}
        for msg in messages:
            key = (msg.topic(), msg.partition())
            first[key] = min(first.get(key, msg.offset()), msg.offset())
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except Exception as exc:  # partition revoked meanwhile: its new owner redoes it
                log.warning("could not rewind %s[%d] to %d: %r", topic, partition, offset, exc)

    def _publish(self, events: list[ReplyDelivered]) -> bool:
        """Write ``events`` and wait until they are on Kafka, retrying until stopped.

        Ids are deterministic, so a retry after a partial failure only writes duplicates
        that readers drop by event id. Returns False if stopped before success.
        """
        delay = 0.5
        while True:
            for event in events:
                self._publisher.publish(event)
            try:
                self._publisher.flush(FLUSH_S)
                return True
            except RuntimeError as exc:
                self._publisher.errors.clear()
                log.error("publishing %d ReplyDelivered failed: %s", len(events), exc)
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, 10.0)
