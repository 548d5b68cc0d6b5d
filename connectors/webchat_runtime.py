"""The clients and in-memory state of a running web-chat connector.

A :class:`Runtime` is made by ``create_app`` without touching the network; its Kafka
clients are built in :meth:`Runtime.start` (the app's lifespan) and closed in
:meth:`Runtime.stop`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from connectors.webchat_delivery import OutboundConsumer
from connectors.webchat_hub import ConversationRegistry, ReplyHub
from connectors.webchat_models import ApiError
from events.base import Event
from streams.bootstrap import build_codec
from streams.kafka import EventPublisher
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 3.0


class IngestPublisher(EventPublisher):
    """An :class:`EventPublisher` that confirms each record's own delivery.

    ``EventPublisher.flush`` reports every failure since the publisher was made, which
    would blame one failed request on all later ones when requests run concurrently;
    here each record carries its own delivery callback.
    """

    def publish_durably(self, event: Event, timeout: float) -> None:
        """Publish ``event`` and wait (``flush``) until Kafka acknowledged it, or raise."""
        topic = self.topics.for_event(event)
        value = self.codec.encode(event, topic)
        acked = threading.Event()
        failure: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failure.append(str(err))
            acked.set()

        deadline = time.monotonic() + timeout
        while True:
            try:
                self.producer.produce(topic, value, event.key.encode(), on_delivery=on_delivery)
                break
            except BufferError:
                if time.monotonic() >= deadline:
                    raise RuntimeError("producer queue is full") from None
                self.producer.poll(0.05)
        self.producer.flush(max(0.0, deadline - time.monotonic()))
        if not acked.wait(max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"not acknowledged by Kafka within {timeout}s")
        if failure:
            raise RuntimeError(f"delivery failed: {failure[0]}")


class Runtime:
    """State and clients shared by the routes of one app."""

    def __init__(
        self,
        settings: Settings,
        *,
        outbound_offset_reset: str = "latest",
        publish_timeout: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.conversations = ConversationRegistry()
        self.hub = ReplyHub()
        self.publish_timeout = publish_timeout
        self._offset_reset = outbound_offset_reset
        self._publisher: IngestPublisher | None = None
        self._delivery_publisher: EventPublisher | None = None
        self.outbound: OutboundConsumer | None = None

    async def start(self) -> None:
        # A record not acknowledged in time fails for good instead of lingering in the
        # producer queue for librdkafka's default five minutes.
        timeout_ms = int(self.publish_timeout * 1000) + 5_000
        self._publisher = IngestPublisher(
            self.settings, build_codec(self.settings), **{"message.timeout.ms": timeout_ms}
        )
        self._delivery_publisher = EventPublisher(
            self.settings, build_codec(self.settings), **{"message.timeout.ms": 15_000}
        )
        self.outbound = OutboundConsumer(
            self.settings,
            self.hub,
            asyncio.get_running_loop(),
            codec=build_codec(self.settings),
            publisher=self._delivery_publisher,
            offset_reset=self._offset_reset,
        )
        self.outbound.start()

    async def stop(self) -> None:
        if self.outbound is not None:
            await asyncio.to_thread(self.outbound.stop)
        for pub in (self._publisher, self._delivery_publisher):
            if pub is not None:
                left = await asyncio.to_thread(pub.producer.flush, 5.0)
                if left:
                    log.warning("%d records not delivered at shutdown", left)

    @property
    def publisher(self) -> IngestPublisher:
        if self._publisher is None:
            raise RuntimeError("the web-chat runtime is not started (lifespan not run)")
        return self._publisher

    async def publish(self, event: Event) -> None:
        """Publish ``event`` and return once it is on Kafka; 503 ``broker_unavailable`` if not."""
        try:
            await asyncio.to_thread(self.publisher.publish_durably, event, self.publish_timeout)
        except RuntimeError as exc:
            log.error("publishing %s %s failed: %s", event.event_type(), event.event_id, exc)
            raise ApiError(
                503, "broker_unavailable", "the message could not be stored; retry later"
            ) from exc

    async def broker_reachable(self) -> bool:
        """Kafka answers a metadata request for the inbound topic, and the topic exists."""

        def probe() -> bool:
            # All topics, not the one: a single-topic request may auto-create it.
            meta = self.publisher.producer.list_topics(timeout=READY_TIMEOUT_S)
            topic = meta.topics.get(self.topics.inbound)
            return topic is not None and topic.error is None

        try:
            return await asyncio.to_thread(probe)
        except Exception as exc:
            log.warning("readiness probe failed: %r", exc)
            return False
