"""The worker's model chain on the real broker: local ONNX, Triton, and the fallbacks.

Every MessageEnriched must name the model that scored it; when Triton cannot be
reached (down at start, or stopped mid-stream) the chain falls back to the in-process
model and the event says so, and nothing is lost.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.enrichment import MessageEnriched
from models.adapters.local import EnrichArtefact
from streams import services
from streams.kafka import EventPublisher, create_topics
from streams.services import triton as triton_svc
from streams.settings import Settings
from tests.factories import received
from tests.support import TopicWatcher, WorkerProcess, unique_settings, wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
#: ``CASESTREAM_TEST_TRITON_PORT_BASE`` moves them, so two checkouts can test at once
_BASE = int(os.environ.get("CASESTREAM_TEST_TRITON_PORT_BASE", "28100")) + 100
PORTS = {"http_port": _BASE, "grpc_port": _BASE + 1, "metrics_port": _BASE + 2}
TEXTS = [
    "I forgot my password and the reset link never arrives",
    "how do I export all my contacts to a CSV file?",
    "This is completely unacceptable, I want to talk to a real person now",
    "what's the weather like in Lisbon tomorrow",
]


def enriched_events(watcher: TopicWatcher) -> list[MessageEnriched]:
    return [e for e in watcher.snapshot() if isinstance(e, MessageEnriched)]


def watch_enriched(settings: Settings) -> TopicWatcher:
    create_topics(settings)  # before the watcher subscribes
    return TopicWatcher(settings, f"{settings.topic_prefix}.conversations.enriched")


@contextlib.contextmanager
def run_worker(settings: Settings, log: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(settings, log).start()
    try:
        yield worker
    finally:
        worker.stop()


def send(settings: Settings, texts: list[str], tag: str) -> None:
    publisher = EventPublisher(settings)
    for i, text in enumerate(texts):
        publisher.publish(received(text, conversation=f"{tag}-{i}"))
    publisher.flush(30)


def test_local_model_scores_every_message_and_names_itself(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = unique_settings(kafka_bootstrap, model="local,baseline")
    watcher = watch_enriched(settings)
    with run_worker(settings, tmp_path / "worker.log") as worker:
        send(settings, TEXTS, "local")
        wait_for(lambda: len(enriched_events(watcher)) >= len(TEXTS), 120, worker.log_tail())
    watcher.close()
    events = {e.text: e for e in enriched_events(watcher)}
    for event in events.values():
        assert event.model.name.startswith("casestream-enrich-")
        assert event.model.fallbacks == ()
        assert len(event.model.sha256) == 64
    assert events[TEXTS[0]].intents[0].label == "ACCOUNT/Password"
    assert events[TEXTS[1]].intents[0].label == "DATA/Export"
    assert "human_request" in events[TEXTS[2]].flags
    assert events[TEXTS[2]].sentiment.label == "negative"
    assert events[TEXTS[3]].intents[0].label == "out_of_scope"


def test_unreachable_triton_falls_back_to_local_and_the_event_records_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = unique_settings(
        kafka_bootstrap, model="triton,local,baseline", triton_url="127.0.0.1:1"
    )
    watcher = watch_enriched(settings)
    with run_worker(settings, tmp_path / "worker.log") as worker:
        send(settings, TEXTS, "down")
        wait_for(lambda: len(enriched_events(watcher)) >= len(TEXTS), 120, worker.log_tail())
    watcher.close()
    for event in enriched_events(watcher):
        assert event.model.name.startswith("casestream-enrich-")
        assert len(event.model.fallbacks) == 1
        assert event.model.fallbacks[0].startswith("triton: ")
        assert "model_fallback" in event.flags


@pytest.fixture
def triton(tmp_path: Path) -> Iterator[str]:
    if not (REPO / triton_svc.TRITON_VENV / "bin" / "python").exists():
        pytest.skip(".venv-triton is missing: run `make triton-env` (part of `make test`)")
    data_dir = tmp_path / "triton"
    url = services.triton_up(REPO, data_dir=data_dir, timeout=90, **PORTS)
    yield url
    services.triton_down(REPO, data_dir=data_dir)


def test_triton_serves_until_it_stops_then_local_takes_over_without_loss(
    kafka_bootstrap: str, tmp_path: Path, triton: str
) -> None:
    settings = unique_settings(
        kafka_bootstrap, model="triton,local,baseline", triton_url=triton, model_timeout_s=5.0
    )
    watcher = watch_enriched(settings)
    with run_worker(settings, tmp_path / "worker.log") as worker:
        send(settings, TEXTS, "up")
        wait_for(lambda: len(enriched_events(watcher)) >= len(TEXTS), 120, worker.log_tail())
        served = enriched_events(watcher)
        services.triton_down(REPO, data_dir=tmp_path / "triton")
        send(settings, TEXTS, "after")
        wait_for(lambda: len(enriched_events(watcher)) >= 2 * len(TEXTS), 120, worker.log_tail())
    watcher.close()
    assert {e.model.fallbacks for e in served} == {()}
    # what Triton says it serves: its model name, and the sha256 of the fp32 build
    assert {e.model.name for e in served} == {"casestream_enrich"}
    assert {e.model.sha256 for e in served} == {EnrichArtefact.load("fp32").info.sha256}
    after = [e for e in enriched_events(watcher) if e.message_id.startswith("after")]
    assert len({e.message_id for e in after}) == len(TEXTS)
    for event in after:
        assert event.model.fallbacks and event.model.fallbacks[0].startswith("triton: ")
        assert event.model.name.startswith("casestream-enrich-")
    # the same texts got the same top intent from Triton (fp32) and the local model
    top = {e.text: e.intents[0].label for e in served}
    assert {e.text: e.intents[0].label for e in after} == top
