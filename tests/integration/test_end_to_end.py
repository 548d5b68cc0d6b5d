"""A customer message typed into web chat comes back as a reply, through the real Kafka.

HTTP POST -> connector -> MessageReceived on Kafka -> worker (enrich, decide) ->
ReplyRequested -> connector -> WebSocket; ReplyDelivered recorded. The worker's
Prometheus endpoint counts what happened.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from connectors.webchat import create_app
from events.delivery import ReplyDelivered
from streams.kafka import create_topics
from streams.settings import Settings
from tests.support import TopicWatcher, WorkerProcess, unique_settings, wait_for

pytestmark = pytest.mark.integration
KEY = {"X-API-Key": "e2e-key"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(kafka_bootstrap: str) -> Settings:
    s = unique_settings(
        kafka_bootstrap, api_keys={"e2e-key": "acme"}, worker_metrics_port=free_port()
    )
    create_topics(s)
    return s


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(settings, tmp_path / "worker.log").start()
    yield proc
    proc.stop()


def receive_json(ws: Any) -> dict[str, Any]:
    data: dict[str, Any] = ws.receive_json()
    return data


def test_message_in_over_http_reply_out_over_websocket(
    settings: Settings, worker: WorkerProcess
) -> None:
    deliveries = TopicWatcher(settings, f"{settings.topic_prefix}.conversations.deliveries")
    try:
        with TestClient(create_app(settings)) as client:
            wait_for(lambda: client.get("/readyz").status_code == 200, 60, "connector ready")
            created = client.post("/v1/conversations", headers=KEY, json={})
            assert created.status_code == 201, created.text
            conversation = created.json()["conversation_id"]
            with client.websocket_connect(
                f"/v1/conversations/{conversation}/stream", headers=dict(KEY)
            ) as ws:
                sent = client.post(
                    f"/v1/conversations/{conversation}/messages",
                    headers=KEY,
                    json={"text": "I forgot my password"},
                )
                assert sent.status_code == 202, sent.text
                reply = receive_json(ws)  # blocks until the worker's reply arrives
                while reply.get("type") != "reply":
                    reply = receive_json(ws)
                assert reply["message_id"] == sent.json()["message_id"]
                assert "reset" in reply["text"].lower()
                assert reply["kind"] == "answer"

                angry = client.post(
                    f"/v1/conversations/{conversation}/messages",
                    headers=KEY,
                    json={"text": "This is useless, I want to speak to a human agent NOW!"},
                )
                assert angry.status_code == 202
                handover = receive_json(ws)
                while handover.get("type") != "reply":
                    handover = receive_json(ws)
                assert handover["kind"] == "handover"
        wait_for(
            lambda: len(deliveries.of_type("ReplyDelivered")) >= 2, 30, "ReplyDelivered events"
        )
        delivered = deliveries.of_type("ReplyDelivered")
        assert all(isinstance(d, ReplyDelivered) for d in delivered)
        assert {d.status for d in delivered} == {"delivered"}
        assert {d.envelope.tenant_id for d in delivered} == {"acme"}
    finally:
        deliveries.close()

    url = f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    counters = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    decided = {k: v for k, v in counters.items() if k.startswith("casestream_decisions_total")}
    assert sum(decided.values()) >= 2, json.dumps(decided)
    assert any('action="escalate"' in k for k in decided)
    assert counters.get('casestream_processing_seconds_count{stage="decide"}', 0) >= 2
    inbound = f"{settings.topic_prefix}.conversations.inbound"
    in_key = f'casestream_events_in_total{{stage="live",topic="{inbound}"}}'
    assert counters.get(in_key, 0) >= 2
