"""Local services for development and tests: a real Kafka broker and a Redis server.

Both run as plain processes on 127.0.0.1, no Docker:

* Kafka: a single-node KRaft broker (combined broker + controller) from the Maven Central
  jars listed in ``ops/kafka/pom.xml`` (fetched once into ``.cache/kafka/lib`` by ``mvn``),
  run with the machine's ``java``. State, pid file and logs live under ``.data/kafka``.
* Redis: Debian's ``redis-server`` (``make redis-install``), no persistence, state under
  ``.data/redis``.

Used by ``make up`` / ``make down`` (``python -m streams.services up|down|status``) and by the
pytest fixtures of the integration tests. Every ``*_up`` function is idempotent: a service that
is already running from our pid file and answering is reused as it is.

Importing this package has no side effects; ``confluent_kafka`` is imported only when a broker
is probed.

Modules: ``common`` (ports, directories, errors), ``process`` (pid files, locks, spawning and
stopping), ``jars`` (java and the Maven jars), ``kafka`` and ``kafka_ready`` (the broker and
its readiness probes), ``redis``, and ``cli`` (``main``).
"""

from streams.services.cli import main, status
from streams.services.common import (
    DEFAULT_KAFKA_CONTROLLER_PORT,
    DEFAULT_KAFKA_PORT,
    DEFAULT_REDIS_PORT,
    HOST,
    KAFKA_CONTROLLER_PORT_ENV,
    KAFKA_DATA_DIR,
    KAFKA_JARS_DIR,
    KAFKA_LOG4J_CONFIG,
    KAFKA_POM,
    KAFKA_PORT_ENV,
    KAFKA_VERSION,
    REDIS_DATA_DIR,
    REDIS_PORT_ENV,
    REPO_ROOT,
    ServiceError,
    ServiceStatus,
    kafka_bootstrap,
    kafka_controller_port,
    kafka_data_dir,
    kafka_jars_dir,
    kafka_port,
    redis_data_dir,
    redis_port,
    redis_url,
)
from streams.services.jars import ensure_kafka_jars
from streams.services.kafka import kafka_down, kafka_server_properties, kafka_status, kafka_up
from streams.services.redis import (
    redis_available,
    redis_down,
    redis_ping,
    redis_status,
    redis_up,
)
from streams.services.triton import TritonAddress, triton_down, triton_status, triton_up

__all__ = [
    "DEFAULT_KAFKA_CONTROLLER_PORT",
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_REDIS_PORT",
    "HOST",
    "KAFKA_CONTROLLER_PORT_ENV",
    "KAFKA_DATA_DIR",
    "KAFKA_JARS_DIR",
    "KAFKA_LOG4J_CONFIG",
    "KAFKA_POM",
    "KAFKA_PORT_ENV",
    "KAFKA_VERSION",
    "REDIS_DATA_DIR",
    "REDIS_PORT_ENV",
    "REPO_ROOT",
    "ServiceError",
    "ServiceStatus",
    "TritonAddress",
    "ensure_kafka_jars",
    "kafka_bootstrap",
    "kafka_controller_port",
    "kafka_data_dir",
    "kafka_down",
    "kafka_jars_dir",
    "kafka_port",
    "kafka_server_properties",
    "kafka_status",
    "kafka_up",
    "main",
    "redis_available",
    "redis_data_dir",
    "redis_down",
    "redis_ping",
    "redis_port",
    "redis_status",
    "redis_up",
    "redis_url",
    "status",
    "triton_down",
    "triton_status",
    "triton_up",
]
