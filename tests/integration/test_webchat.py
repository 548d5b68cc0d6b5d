"""The web-chat connector against a REAL Kafka broker.

HTTP and WebSocket traffic go through ``fastapi.testclient.TestClient`` (which runs the
app's lifespan, so the real producers and the reply consumer are used); events are read
back from the topics with ``streams.kafka.read_topic`` and decoded with ``AvroCodec``.
Each module run uses its own topic prefix and consumer group.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from connectors.webchat import create_app
from events.base import Event, derive_event_id, origin_envelope
from events.codec import AvroCodec
from events.conversation import ConversationStarted, MessageReceived
from events.decisions import ReplyRequested
from events.delivery import ReplyDelivered
from streams.kafka import EventPublisher, create_topics, read_topic
from streams.settings import Settings, load_settings
from streams.topics import Topics

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
KEY_A, TENANT_A = "key-a", "tenant-a"
KEY_B, TENANT_B = "key-b", "tenant-b"
# Pass copies to ``websocket_connect``: the test client adds handshake headers in place.
A = {"X-API-Key": KEY_A}
B = {"X-API-Key": KEY_B}
E = TypeVar("E", bound=Event)


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str) -> Settings:
    """Own topics and group per module run, on the broker of ``tests/conftest.py``
    (``streams.services.kafka_up``)."""
    bootstrap = kafka_bootstrap
    prefix = f"t{uuid.uuid4().hex[:8]}"
    s = load_settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        partitions=2,
        api_keys={KEY_A: TENANT_A, KEY_B: TENANT_B},
    )
    create_topics(s)
    return s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        wait_until(lambda: c.get("/readyz").status_code == 200, "connector ready")
        yield c


@pytest.fixture(scope="module")
def publisher(settings: Settings) -> EventPublisher:
    return EventPublisher(settings)


# --- helpers -----------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        time.sleep(0.1)


def events_on(settings: Settings, topic: str) -> list[Event]:
    codec = AvroCodec()
    return [codec.decode(r.value) for r in read_topic(settings, topic, idle_timeout=1.0)]


def find_events(
    settings: Settings,
    topic: str,
    cls: type[E],
    match: Callable[[E], bool],
    *,
    count: int = 1,
    timeout: float = TIMEOUT,
) -> list[E]:
    """The ``cls`` events on ``topic`` matching ``match``, once at least ``count`` are there."""
    found: list[E] = []

    def check() -> bool:
        nonlocal found
        found = [e for e in events_on(settings, topic) if isinstance(e, cls) and match(e)]
        return len(found) >= count

    wait_until(check, f"{count} {cls.__name__} on {topic}", timeout)
    return found


def start(client: TestClient, headers: dict[str, str] = A, **body: Any) -> str:
    resp = client.post("/v1/conversations", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["conversation_id"])


def reply_for(tenant: str, conversation_id: str, text: str) -> ReplyRequested:
    return ReplyRequested(
        envelope=origin_envelope(
            ReplyRequested,
            tenant_id=tenant,
            conversation_id=conversation_id,
            producer="test",
            producer_version="0",
        ),
        reply_id=str(uuid.uuid4()),
        message_id=str(uuid.uuid4()),
        channel="web_chat",
        text=text,
        kind="answer",
    )


def send(publisher: EventPublisher, *events: Event) -> None:
    for event in events:
        publisher.publish(event)
    publisher.flush(TIMEOUT)


def frame_of(reply: ReplyRequested) -> dict[str, Any]:
    return {
        "type": "reply",
        "reply_id": reply.reply_id,
        "message_id": reply.message_id,
        "text": reply.text,
        "kind": reply.kind,
        "conversation_id": reply.envelope.conversation_id,
    }


class Frames:
    """Reads a test socket in a thread so that every wait has a deadline."""

    def __init__(self, ws: WebSocketTestSession) -> None:
        self._ws = ws
        self._q: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                self._q.put(self._ws.receive_json())
        except BaseException as exc:  # the socket closed: hand the reason to the test
            self._q.put(exc)

    def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no frame within {timeout}s") from None
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, dict)
        return item


def assert_error(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]


# --- HTTP --------------------------------------------------------------------------------


def test_health_readiness_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["broker"] is True and ready.json()["outbound_consumer"] is True
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "casestream web chat"
    post = spec["paths"]["/v1/conversations/{conversation_id}/messages"]["post"]
    assert "10,000" in post["description"]
    assert "text" in post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"202", "400", "401", "404", "413", "422", "503"} <= set(post["responses"])
    assert "/v1/conversations" in spec["paths"]


def test_missing_or_unknown_api_key_is_401(client: TestClient) -> None:
    assert_error(client.post("/v1/conversations", json={}), 401, "unauthorized")
    assert_error(
        client.post("/v1/conversations", json={}, headers={"X-API-Key": "nope"}),
        401,
        "unauthorized",
    )
    cid = start(client)
    resp = client.post(f"/v1/conversations/{cid}/messages", json={"text": "hi"})
    assert_error(resp, 401, "unauthorized")


def test_start_conversation_publishes_conversation_started(
    client: TestClient, settings: Settings
) -> None:
    resp = client.post(
        "/v1/conversations",
        json={"channel": "web_chat", "customer_id": "cust-1", "locale": "en-GB"},
        headers=A,
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["tenant_id"] == TENANT_A
    cid = body["conversation_id"]
    (started,) = find_events(
        settings,
        Topics(settings.topic_prefix).inbound,
        ConversationStarted,
        lambda e: e.envelope.conversation_id == cid,
    )
    assert started.envelope.tenant_id == TENANT_A
    assert started.envelope.producer == "connector.webchat"
    assert started.envelope.causation_id is None
    assert (started.channel, started.customer_id, started.locale) == ("web_chat", "cust-1", "en-GB")
    # The body is optional.
    assert client.post("/v1/conversations", headers=A).status_code == 201


def test_bad_requests_get_json_errors(client: TestClient) -> None:
    cid = start(client)
    url = f"/v1/conversations/{cid}/messages"
    assert_error(client.post(url, content=b"\xff\xfe", headers=A), 400, "invalid_encoding")
    assert_error(client.post(url, content=b"{not json", headers=A), 400, "invalid_json")
    assert_error(client.post(url, content=b"", headers=A), 400, "invalid_json")
    assert_error(client.post(url, json={"text": ""}, headers=A), 422, "empty_message")
    assert_error(client.post(url, json={"text": " \n\t "}, headers=A), 422, "empty_message")
    assert_error(client.post(url, json={"text": "\x00\x01"}, headers=A), 422, "empty_message")
    assert_error(client.post(url, json={"txt": "hi"}, headers=A), 422, "validation_error")
    assert_error(client.post(url, json={"text": 5}, headers=A), 422, "validation_error")
    big = b'{"text": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    assert_error(client.post(url, content=big, headers=A), 413, "payload_too_large")
    unknown = f"/v1/conversations/{uuid.uuid4()}/messages"
    assert_error(client.post(unknown, json={"text": "hi"}, headers=A), 404, "unknown_conversation")
    # Another tenant's conversation is unknown, not forbidden: ids do not leak.
    assert_error(client.post(url, json={"text": "hi"}, headers=B), 404, "unknown_conversation")
    # FastAPI's own validation errors (here: a non-JSON channel value) keep the shape.
    bad_start = client.post("/v1/conversations", json={"channel": "sms"}, headers=A)
    assert_error(bad_start, 422, "validation_error")
    assert_error(client.get("/no/such/route"), 404, "not_found")


def test_long_message_is_truncated_flagged_and_published(
    client: TestClient, settings: Settings
) -> None:
    cid = start(client)
    text = "".join(chr(ord("a") + i % 26) for i in range(100_000))
    resp = client.post(f"/v1/conversations/{cid}/messages", json={"text": text}, headers=A)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["truncated"] is True
    assert body["accepted_chars"] == 10_000
    assert body["original_length"] == 100_000
    (event,) = find_events(
        settings,
        Topics(settings.topic_prefix).inbound,
        MessageReceived,
        lambda e: e.event_id == body["event_id"],
    )
    assert event.envelope.conversation_id == cid and event.envelope.tenant_id == TENANT_A
    assert event.message_id == body["message_id"]
    assert event.channel == "web_chat"
    assert event.text == text[:10_000] and len(event.text) == 10_000
    assert event.truncated is True
    assert "truncated" in event.flags
    assert event.original_length == 100_000


def test_control_characters_are_stripped_and_message_id_is_idempotent(
    client: TestClient, settings: Settings
) -> None:
    cid = start(client, customer_id="cust-9")
    url = f"/v1/conversations/{cid}/messages"
    payload = {"text": "hi\x00 there\x07\r\nline\ttwo", "message_id": "msg-42"}
    first = client.post(url, json=payload, headers=A)
    again = client.post(url, json=payload, headers=A)
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["event_id"] == again.json()["event_id"]
    assert first.json()["message_id"] == "msg-42"
    assert first.json()["truncated"] is False
    events = find_events(
        settings,
        Topics(settings.topic_prefix).inbound,
        MessageReceived,
        lambda e: e.envelope.conversation_id == cid,
        count=2,
    )
    assert {e.event_id for e in events} == {first.json()["event_id"]}
    event = events[0]
    assert event.text == "hi there\nline\ttwo"
    assert event.flags == ("control_chars_removed",)
    assert event.truncated is False and event.original_length == len(payload["text"])
    assert event.customer_id == "cust-9"  # from the conversation


# --- replies over the WebSocket -------------------------------------------------------------


def test_reply_is_pushed_to_the_socket_and_reported_delivered(
    client: TestClient, settings: Settings, publisher: EventPublisher
) -> None:
    cid = start(client)
    with client.websocket_connect(f"/v1/conversations/{cid}/stream", headers=dict(A)) as ws:
        frames = Frames(ws)
        reply = reply_for(TENANT_A, cid, "Your refund is on its way.")
        send(publisher, reply)
        assert frames.next() == frame_of(reply)
    (delivered,) = find_events(
        settings,
        Topics(settings.topic_prefix).deliveries,
        ReplyDelivered,
        lambda e: e.reply_id == reply.reply_id,
    )
    assert delivered.status == "delivered" and delivered.channel == "web_chat"
    assert delivered.event_id == derive_event_id(reply.event_id, "ReplyDelivered", 0)
    assert delivered.envelope.causation_id == reply.event_id
    assert delivered.envelope.producer == "connector.webchat"


def test_duplicate_reply_is_pushed_once(
    client: TestClient, settings: Settings, publisher: EventPublisher
) -> None:
    cid = start(client)
    url = f"/v1/conversations/{cid}/stream?api_key={KEY_A}"  # key as query parameter
    with client.websocket_connect(url) as ws:
        frames = Frames(ws)
        reply = reply_for(TENANT_A, cid, "once")
        sentinel = reply_for(TENANT_A, cid, "after the duplicate")
        send(publisher, reply, reply)
        send(publisher, sentinel)
        assert frames.next() == frame_of(reply)
        assert frames.next() == frame_of(sentinel)  # the duplicate was not pushed
    # Same conversation, same partition: once the sentinel's report is read, the
    # duplicate's would have been read too.
    reports = find_events(
        settings,
        Topics(settings.topic_prefix).deliveries,
        ReplyDelivered,
        lambda e: e.reply_id in {reply.reply_id, sentinel.reply_id},
        count=2,
    )
    assert sorted(e.reply_id for e in reports) == sorted([reply.reply_id, sentinel.reply_id])


def test_reply_without_socket_is_queued_then_flushed_on_connect(
    client: TestClient, settings: Settings, publisher: EventPublisher
) -> None:
    cid = start(client)
    deliveries = Topics(settings.topic_prefix).deliveries
    reply = reply_for(TENANT_A, cid, "kept for later")
    send(publisher, reply)
    (queued,) = find_events(
        settings, deliveries, ReplyDelivered, lambda e: e.reply_id == reply.reply_id
    )
    assert queued.status == "queued"
    with client.websocket_connect(f"/v1/conversations/{cid}/stream", headers=dict(A)) as ws:
        assert Frames(ws).next() == frame_of(reply)
    reports = find_events(
        settings, deliveries, ReplyDelivered, lambda e: e.reply_id == reply.reply_id, count=2
    )
    assert sorted(e.status for e in reports) == ["delivered", "queued"]
    assert derive_event_id(reply.event_id, "ReplyDelivered", 1) in {e.event_id for e in reports}


def test_websocket_rejects_bad_key_and_unknown_conversation(client: TestClient) -> None:
    cid = start(client)
    cases = [
        (f"/v1/conversations/{cid}/stream", {}, 4401),
        (f"/v1/conversations/{cid}/stream?api_key=wrong", {}, 4401),
        (f"/v1/conversations/{uuid.uuid4()}/stream", A, 4404),
        (f"/v1/conversations/{cid}/stream", B, 4404),  # another tenant's conversation
    ]
    for url, headers, code in cases:
        with client.websocket_connect(url, headers=dict(headers)) as ws:
            with pytest.raises(WebSocketDisconnect) as info:
                Frames(ws).next()
            assert info.value.code == code, url


def test_metrics_count_requests(client: TestClient) -> None:
    start(client)
    text = client.get("/metrics").text
    assert 'casestream_http_requests_total{route="/v1/conversations",status="201"}' in text
    assert "casestream_replies_delivered_total" in text


def test_broker_down_is_503(settings: Settings) -> None:
    down = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    with TestClient(create_app(down, publish_timeout=1.0)) as c:
        resp = c.post("/v1/conversations", json={}, headers=A)
        assert_error(resp, 503, "broker_unavailable")
        assert_error(c.get("/readyz"), 503, "not_ready")
        assert c.get("/healthz").status_code == 200


def test_served_by_uvicorn_over_real_sockets(settings: Settings) -> None:
    """The same app behind a real uvicorn server: HTTP, close codes and a pushed reply.

    Own topics and group, so that the module's TestClient app does not share the replies.
    """
    import httpx
    import uvicorn
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"topic_prefix": prefix, "app_id": f"{prefix}-app"})
    create_topics(settings)
    publisher = EventPublisher(settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: server.started, "uvicorn started")
        with httpx.Client(base_url=base, timeout=TIMEOUT) as http:
            wait_until(lambda: http.get("/readyz").status_code == 200, "ready over HTTP")
            resp = http.post("/v1/conversations", json={}, headers=A)
            assert resp.status_code == 201, resp.text
            cid = resp.json()["conversation_id"]
            bad = http.post(f"/v1/conversations/{cid}/messages", content=b"\xff", headers=A)
            assert_error(bad, 400, "invalid_encoding")
        ws_base = f"ws://127.0.0.1:{port}/v1/conversations"
        for url, code in [
            (f"{ws_base}/{cid}/stream?api_key=wrong", 4401),
            (f"{ws_base}/{uuid.uuid4()}/stream?api_key={KEY_A}", 4404),
        ]:
            with connect(url, open_timeout=TIMEOUT) as ws, pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == code
        with connect(f"{ws_base}/{cid}/stream", additional_headers=A) as ws:
            ws.send('{"type": "ping"}')
            assert json.loads(ws.recv(timeout=TIMEOUT)) == {"type": "pong"}
            reply = reply_for(TENANT_A, cid, "hello over a real socket")
            send(publisher, reply)
            assert json.loads(ws.recv(timeout=TIMEOUT)) == frame_of(reply)
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
    assert not thread.is_alive()
