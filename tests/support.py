"""Helpers for integration tests: a worker subprocess, a topic watcher, bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from events.base import Event
from events.codec import AvroCodec, DecodeError
from streams.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def unique_settings(bootstrap: str, **overrides: Any) -> Settings:
    """Settings with a fresh topic prefix and app id, so tests never share topics."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "topic_prefix": tag,
        "app_id": f"{tag}-agent",
        "worker_metrics_port": 0,
        "partitions": 4,
        "model": "baseline",  # the policy tests' expectations; model tests override
    }
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "kafka_bootstrap",
        "topic_prefix",
        "app_id",
        "partitions",
        "worker_metrics_port",
        "commit_interval_s",
        "model",
        "worker_agents",
        "model_variant",
        "model_max_batch",
        "model_threads",
        "triton_url",
        "model_timeout_s",
        "batch_max",
        "batch_within_s",
        "worker_instance_id",
    ):
        value = getattr(settings, name)
        if value is not None:
            env[f"CASESTREAM_{name.upper()}"] = str(value)
    return env


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class WorkerProcess:
    """``casestream worker`` as a child process (so a test can kill -9 it)."""

    def __init__(self, settings: Settings, log_path: Path, loglevel: str = "warn") -> None:
        self.settings = settings
        self.log_path = log_path
        self.loglevel = loglevel
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--loglevel", self.loglevel],
            cwd=REPO,
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, grace: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text("utf-8", "replace").splitlines()
        kept = [line for line in text if not line.startswith("%")][-lines:]
        return "\n".join(kept)[-8000:] or "(empty)"

    def check_alive(self) -> None:
        """Raise with the log's tail if the worker has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}\n{self.log_tail()}")


class TopicWatcher:
    """Reads a topic from the start in a thread, keeping every decoded record."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        codec: AvroCodec | None = None,
        *,
        decode: bool = True,
    ) -> None:
        self.codec = codec or AvroCodec()
        self.decode = decode
        self.events: list[Event] = []
        self.raw: list[tuple[bytes | None, bytes | None, int]] = []
        self.undecodable = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"watch-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        parts: list[int] = []
        deadline = time.monotonic() + 30
        while not parts:  # a topic created a moment ago may not be in the metadata yet
            meta = self._consumer.list_topics(topic, timeout=10)
            parts = sorted(meta.topics[topic].partitions)
            if not parts:
                if time.monotonic() > deadline:
                    raise AssertionError(f"topic {topic} has no partitions")
                time.sleep(0.1)
        self._consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # surfaced by snapshot(): a dead reader fails the test
            self.error = exc

    def _read(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, timeout=0.2):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(str(msg.error()))
                    continue
                with self._lock:
                    self.raw.append((msg.key(), msg.value(), msg.timestamp()[1]))
                    if not self.decode:
                        continue
                    try:
                        self.events.append(self.codec.decode(msg.value()))
                    except DecodeError:
                        self.undecodable += 1

    def _check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the topic reader stopped: {self.error!r}") from self.error

    def count(self) -> int:
        self._check()
        with self._lock:
            return len(self.raw)

    def snapshot(self) -> list[Event]:
        self._check()
        with self._lock:
            return list(self.events)

    def of_type(self, name: str) -> list[Any]:
        return [e for e in self.snapshot() if type(e).__name__ == name]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
