"""confluent-kafka adapters: topic creation, an event publisher, and a topic reader.

Producers use the ``murmur2_random`` partitioner, the Java client's (and aiokafka's)
default, so that a key lands on the same partition whichever client wrote it: the
conversation table is co-partitioned with its topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from events.base import Event
from events.codec import AvroCodec
from streams.app import changelog_topic
from streams.settings import Settings
from streams.steps import Output, Record
from streams.topics import ALL_TOPICS, Topics

FLUSH_TIMEOUT_S = 30.0


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "linger.ms": settings.producer_linger_ms,
        "compression.type": "lz4",
    }
    cfg.update(extra)
    return cfg


def create_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create every registry topic (and the table changelog) that does not exist yet."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    topics = Topics(settings.topic_prefix)
    wanted: list[NewTopic] = [
        NewTopic(
            topics.name(spec),
            num_partitions=spec.partitions or settings.partitions,
            replication_factor=1,
            config=spec.config(),
        )
        for spec in ALL_TOPICS
    ]
    wanted.append(
        NewTopic(
            changelog_topic(settings),
            num_partitions=settings.partitions,
            replication_factor=1,
            config={"cleanup.policy": "compact"},
        )
    )
    existing = set(admin.list_topics(timeout=timeout).topics)
    todo = [t for t in wanted if t.topic not in existing]
    created: list[str] = []
    if not todo:
        return created
    for name, future in admin.create_topics(todo, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


class EventPublisher:
    """Encodes events and writes them to their topics, keyed by conversation."""

    def __init__(self, settings: Settings, codec: AvroCodec | None = None, **extra: Any) -> None:
        self.codec = codec or AvroCodec()
        self.topics = Topics(settings.topic_prefix)
        self.producer = Producer(producer_config(settings, **extra))
        self.errors: list[str] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))

    def publish(self, event: Event) -> None:
        topic = self.topics.for_event(event)
        self.send(Output(topic, event.key.encode(), self.codec.encode(event, topic), event))

    def send(self, out: Output) -> None:
        while True:
            try:
                self.producer.produce(out.topic, out.value, out.key, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait for delivery; raise if anything is still queued or failed."""
        left = self.producer.flush(timeout)
        if left:
            raise RuntimeError(f"{left} records still queued after {timeout}s: is Kafka up?")
        if self.errors:
            raise RuntimeError(f"delivery failed: {self.errors[:3]}")


def read_topic(
    settings: Settings,
    topic: str,
    *,
    start_offset: int | None = None,
    start_timestamp_ms: int | None = None,
    until_end: bool = True,
    idle_timeout: float = 5.0,
) -> Iterator[Record]:
    """Every record of ``topic`` from an offset (default 0) or a timestamp, to the end."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "casestream-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        if meta.topics[topic].error is not None:
            raise RuntimeError(f"topic {topic}: {meta.topics[topic].error}")
        partitions = sorted(meta.topics[topic].partitions)
        tps = [TopicPartition(topic, p, start_offset or 0) for p in partitions]
        if start_timestamp_ms is not None:
            query = [TopicPartition(topic, p, start_timestamp_ms) for p in partitions]
            tps = consumer.offsets_for_times(query, timeout=10)
        consumer.assign(tps)
        yield from _drain(consumer, len(partitions), until_end, idle_timeout)
    finally:
        consumer.close()


def _drain(consumer: Any, partitions: int, until_end: bool, idle: float) -> Iterable[Record]:
    at_end: set[int] = set()
    while True:
        batch = consumer.consume(1000, timeout=idle if until_end else 1.0)
        if not batch and until_end:
            return
        for msg in batch:
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            at_end.discard(msg.partition())
            yield record_of(msg)
        if until_end and len(at_end) >= partitions:
            return


def record_of(msg: Any) -> Record:
    """The :class:`Record` of a confluent-kafka message (CreateTime or LogAppendTime)."""
    return Record(
        msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.timestamp()[1]
    )
