"""Shared fixtures: the real local Kafka broker, started once and stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams import services


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real single-node Kafka (KRaft) on 127.0.0.1, via the same code as ``make up``."""
    was_running = services.kafka_status().answering
    bootstrap = services.kafka_up()
    yield bootstrap
    if not was_running:
        services.kafka_down()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on 127.0.0.1 (Debian's), stopped at the end if we started it."""
    if not services.redis_available():
        pytest.fail("redis-server is not installed: run `make redis-install`")
    was_running = services.redis_status().answering
    url = services.redis_up()
    yield url
    if not was_running:
        services.redis_down()
