"""The local-services layer against a REAL Kafka 4.1 broker (and Redis when installed).

Proves on this machine's broker: topic creation, plain produce/consume, idempotent and
transactional produce with confluent-kafka, and the same with aiokafka 0.14 (Kafka 4 removed
old protocol versions, KIP-896). The broker is left running for the rest of the session
(``kafka_up`` is idempotent, so other modules reuse it).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from streams import services

pytestmark = pytest.mark.integration

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def local_kafka(kafka_bootstrap: str) -> str:
    """The session's broker (tests/conftest.py starts it and stops it at the end)."""
    return kafka_bootstrap


@pytest.fixture(scope="module")
def local_redis(redis_url: str) -> str:
    return redis_url


def _create_topic(bootstrap: str, partitions: int = 1) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"test-local-services-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        operation_timeout=TIMEOUT,
    )
    futures[name].result(TIMEOUT)
    # CreateTopics returns once the controller committed the topic; the broker's metadata
    # cache follows a moment later (seen: UNKNOWN_TOPIC_OR_PART right after the future).
    deadline = time.monotonic() + TIMEOUT
    while True:
        topic = admin.list_topics(topic=name, timeout=TIMEOUT).topics[name]
        if topic.error is None and len(topic.partitions) == partitions:
            return name
        assert time.monotonic() < deadline, f"topic {name} not in metadata: {topic.error}"
        time.sleep(0.05)


def _consume(bootstrap: str, topic: str, count: int, **extra: Any) -> list[tuple[bytes, bytes]]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **extra,
        }
    )
    got: list[tuple[bytes, bytes]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return got


def test_broker_metadata(local_kafka: str) -> None:
    from confluent_kafka.admin import AdminClient

    assert local_kafka == f"127.0.0.1:{services.kafka_port()}"
    # Keep the client referenced until the future resolves (a collected handle cancels it).
    admin = AdminClient({"bootstrap.servers": local_kafka})
    description = admin.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT)
    assert [node.id for node in description.nodes] == [1]
    # Idempotent: a second call returns at once with the same address.
    assert services.kafka_up() == local_kafka
    assert services.kafka_status().answering


def test_confluent_produce_consume(local_kafka: str) -> None:
    from confluent_kafka import Producer

    topic = _create_topic(local_kafka)
    producer = Producer({"bootstrap.servers": local_kafka, "enable.idempotence": True})
    for i in range(3):
        producer.produce(topic, key=f"k{i}".encode(), value=f"plain-{i}".encode())
    assert producer.flush(TIMEOUT) == 0
    got = _consume(local_kafka, topic, 3)
    assert got == [(f"k{i}".encode(), f"plain-{i}".encode()) for i in range(3)]


def test_confluent_transactions(local_kafka: str) -> None:
    from confluent_kafka import Producer

    topic = _create_topic(local_kafka)
    producer = Producer(
        {
            "bootstrap.servers": local_kafka,
            "transactional.id": f"test-txn-{uuid.uuid4().hex[:8]}",
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(TIMEOUT)
    producer.begin_transaction()
    producer.produce(topic, key=b"a", value=b"aborted")
    # Without the flush, abort would purge the unsent message instead of aborting it on the log.
    assert producer.flush(TIMEOUT) == 0
    producer.abort_transaction(TIMEOUT)
    producer.begin_transaction()
    producer.produce(topic, key=b"c", value=b"committed-1")
    producer.produce(topic, key=b"c", value=b"committed-2")
    producer.commit_transaction(TIMEOUT)
    producer.close()

    committed = _consume(local_kafka, topic, 2, **{"isolation.level": "read_committed"})
    assert committed == [(b"c", b"committed-1"), (b"c", b"committed-2")]
    uncommitted = _consume(local_kafka, topic, 3, **{"isolation.level": "read_uncommitted"})
    assert [v for _, v in uncommitted] == [b"aborted", b"committed-1", b"committed-2"]


def test_aiokafka_against_kafka_4(local_kafka: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    plain_topic = f"test-aiokafka-{uuid.uuid4().hex[:12]}"
    txn_topic = f"test-aiokafka-txn-{uuid.uuid4().hex[:12]}"

    async def consume(topic: str, count: int, isolation: str) -> list[tuple[bytes, bytes]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=local_kafka,
            group_id=f"test-aio-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level=isolation,
        )
        await consumer.start()
        got: list[tuple[bytes, bytes]] = []
        try:
            async with asyncio.timeout(TIMEOUT):
                while len(got) < count:
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        got += [(r.key, r.value) for r in records]
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    async def scenario() -> None:
        # CreateTopics through aiokafka's own admin client (Faust creates topics this way).
        admin = AIOKafkaAdminClient(bootstrap_servers=local_kafka)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(plain_topic, num_partitions=2, replication_factor=1),
                    NewTopic(txn_topic, num_partitions=1, replication_factor=1),
                ]
            )
        finally:
            await admin.close()

        producer = AIOKafkaProducer(bootstrap_servers=local_kafka, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(3):
                await producer.send_and_wait(plain_topic, key=b"k", value=f"aio-{i}".encode())
        finally:
            await producer.stop()
        plain = await consume(plain_topic, 3, "read_uncommitted")
        assert [v for _, v in plain] == [b"aio-0", b"aio-1", b"aio-2"]

        txn_producer = AIOKafkaProducer(
            bootstrap_servers=local_kafka,
            transactional_id=f"test-aio-txn-{uuid.uuid4().hex[:8]}",
        )
        await txn_producer.start()
        try:
            await txn_producer.begin_transaction()
            await txn_producer.send_and_wait(txn_topic, key=b"a", value=b"aborted")
            await txn_producer.abort_transaction()
            async with txn_producer.transaction():
                await txn_producer.send(txn_topic, key=b"c", value=b"committed")
        finally:
            await txn_producer.stop()
        committed = await consume(txn_topic, 1, "read_committed")
        assert committed == [(b"c", b"committed")]

    asyncio.run(scenario())


def test_redis_ping(local_redis: str) -> None:
    assert local_redis == f"redis://127.0.0.1:{services.redis_port()}/0"
    assert services.redis_ping(services.redis_port())
    assert services.redis_up() == local_redis
