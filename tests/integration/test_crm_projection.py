"""The CRM case-sync projection on a REAL Kafka broker, into both CRM adapters.

The demo conversations (plus a start, a follow-up after the hand-over, a close and
feedback for the angry customer) run through the processors with the log driver; their
events are published to the test's own topics and the projection reads them back. The
Salesforce adapter is the real ``simple-salesforce`` client against ``tests.fakes.salesforce``
over HTTPS. Waits are bounded (``until_caught_up`` runs, ``wait_for`` polls).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from events.base import Event, derive_event_id, origin_envelope
from events.conversation import (
    ConversationClosed,
    ConversationStarted,
    FeedbackReceived,
    MessageReceived,
)
from events.decisions import CaseEscalated
from events.delivery import EventRejected
from projections.crm.local import LocalCaseStore
from projections.crm.port import CaseStore, PermanentCrmError
from projections.crm.projection import CrmProjection, external_id
from projections.crm.salesforce import SalesforceCaseStore
from projections.runner import Applied, run_projection
from replay.demo import START, scenario_records
from replay.driver import LogDriver
from streams.bootstrap import build_steps
from streams.kafka import EventPublisher, create_topics, read_topic
from streams.settings import Settings
from streams.steps import Record
from tests.fakes.salesforce import FakeSalesforce
from tests.support import TopicWatcher, unique_settings, wait_for

pytestmark = pytest.mark.integration

# the demo tenant: its directory (agent/workflows/sample_accounts.yaml) knows the
# blueprint's user@example.com, so only the angry customer escalates
TENANT, ANGRY = "demo", "demo-2-angry-customer"
ANGRY_ID = external_id(TENANT, ANGRY)


def envelope(kind: type[Event], conversation: str, seconds: int, tenant: str = TENANT) -> Any:
    return origin_envelope(
        kind,
        tenant_id=tenant,
        conversation_id=conversation,
        producer="test",
        producer_version="0",
        event_id=derive_event_id(f"{tenant}/{conversation}", kind.event_type(), seconds),
        occurred_at=START + timedelta(seconds=seconds),
    )


def escalation(conversation: str, seconds: int = 0) -> CaseEscalated:
    return CaseEscalated(
        envelope=envelope(CaseEscalated, conversation, seconds),
        case_id=f"case-{conversation}",
        message_id=f"{conversation}-m0",
        reason="customer_frustrated",
        priority="urgent",
        summary=f"{conversation}: customer is upset",
        confidence=0.42,
        sentiment_trajectory=(-0.2, -0.7),
        transcript_ref=f"conversations/{TENANT}/{conversation}",
        intent="billing_refund",
    )


def publish_demo(settings: Settings) -> list[Event]:
    """Publish the demo's inbound events and every processor output; return them all."""
    steps = build_steps(settings)
    inbound: list[Event] = [
        ConversationStarted(envelope=envelope(ConversationStarted, ANGRY, 100), channel="web_chat")
    ]
    inbound += [steps.codec.decode(r.value) for r in scenario_records(steps, TENANT)]
    inbound += [
        MessageReceived(
            envelope=envelope(MessageReceived, ANGRY, 300),
            message_id=f"{ANGRY}-m3",
            channel="web_chat",
            text="Hello?? Is anyone there?",
            original_length=24,
            truncated=False,
        ),
        ConversationClosed(
            envelope=envelope(ConversationClosed, ANGRY, 400), reason="agent", resolved=True
        ),
        FeedbackReceived(
            envelope=envelope(FeedbackReceived, ANGRY, 500), rating=2, comment="too slow"
        ),
    ]
    records = []
    for i, event in enumerate(inbound):
        out = steps.output(event)
        records.append(Record(out.topic, 0, i, out.key, out.value, 0))
    events = inbound + [out.event for out in LogDriver(steps).run(records)]
    publish(settings, events)
    return events


def publish(settings: Settings, events: list[Event]) -> None:
    publisher = EventPublisher(settings, build_steps(settings).codec)
    for event in events:
        publisher.publish(event)
    publisher.flush()


def everything(settings: Settings, projection: CrmProjection) -> list[Applied]:
    """Every record of the projection's topics, decoded: a redelivery of the whole log."""
    codec = build_steps(settings).codec
    return [
        Applied(r, codec.decode(r.value))
        for topic in projection.topics()
        for r in read_topic(settings, topic, idle_timeout=1.0)
    ]


def catch_up(settings: Settings, projection: CrmProjection) -> None:
    run_projection(settings, projection, until_caught_up=True, max_backoff_s=0.5)


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    settings = unique_settings(kafka_bootstrap).model_copy(
        update={"crm_sqlite_path": tmp_path / "crm.sqlite"}
    )
    create_topics(settings)
    return settings


@pytest.fixture
def fake_sf(tmp_path: Path) -> Iterator[FakeSalesforce]:
    fake = FakeSalesforce(tmp_path).start()
    yield fake
    fake.stop()


def sf_store(fake: FakeSalesforce) -> SalesforceCaseStore:
    session = requests.Session()
    session.verify = str(fake.cert_path)
    session.trust_env = False  # this machine's REQUESTS_CA_BUNDLE would otherwise win
    return SalesforceCaseStore.login(
        fake.url, username="crm@example.com", password="pw", token="tok",
        session=session, base_delay=0.01,
    )  # fmt: skip


# --- the port's contract, run against both adapters ----------------------------------


@pytest.fixture(params=["local", "salesforce"])
def case_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CaseStore]:
    if request.param == "local":
        local = LocalCaseStore(tmp_path / "contract.sqlite")
        yield local
        local.shutdown()
        return
    fake = FakeSalesforce(tmp_path).start()
    yield sf_store(fake)
    fake.stop()


def test_case_store_contract(case_store: CaseStore) -> None:
    assert case_store.get_case("t9:nobody") is None
    case_id = case_store.upsert_case("t9:c/1", {"subject": "s", "priority": "High"})
    assert case_store.upsert_case("t9:c/1", {"subject": "s2", "status": "Escalated"}) == case_id
    case_store.update_case(case_id, {"status": "Closed", "origin": "web_chat"})
    case_store.add_comment(case_id, "first")
    case_store.add_comment(case_id, "second", key="e2")
    case = case_store.get_case("t9:c/1")
    assert case is not None and case.case_id == case_id and case.external_id == "t9:c/1"
    assert case.fields == {
        "subject": "s2", "priority": "High", "status": "Closed", "origin": "web_chat"
    }  # fmt: skip
    assert case.comments == ("first", "second")
    missing = "500000000000000XYZ" if isinstance(case_store, SalesforceCaseStore) else "nope"
    with pytest.raises(PermanentCrmError):
        case_store.update_case(missing, {"status": "Closed"})


# --- the embedded store -------------------------------------------------------------


def test_escalation_becomes_a_local_case_with_history(settings: Settings) -> None:
    events = publish_demo(settings)
    projection = CrmProjection.from_settings(settings)
    try:
        assert isinstance(projection.store, LocalCaseStore)
        catch_up(settings, projection)
        store = projection.store
        case = store.get_case(ANGRY_ID)
        assert case is not None
        assert case.fields["status"] == "Closed"
        assert case.fields["origin"] == "web_chat"
        assert case.fields["priority"] in {"High", "Medium"}
        assert case.fields["escalation_reason"] == "explicit_human_request"
        assert f"conversations/{TENANT}/{ANGRY}" in case.fields["description"]
        assert any("after the hand-over" in c for c in case.comments)
        assert any("2/5: too slow" in c for c in case.comments)
        history = store.history(ANGRY_ID)
        assert history[0] == "Case.Opened"
        assert {"Case.Updated", "Case.StatusChanged", "Case.Commented"} <= set(history)
        assert projection.summary()["cases"] == 1  # only the angry customer escalated

        # Redelivery of the whole log, and of the same events at new offsets: no change.
        projection.apply(everything(settings, projection))
        publish(settings, [e for e in events if isinstance(e, CaseEscalated | FeedbackReceived)])
        catch_up(settings, projection)
        assert store.history(ANGRY_ID) == history
        assert store.get_case(ANGRY_ID) == case
        assert projection.counts["duplicate"] >= 1

        # Rebuild into a wiped store gives the same case.
        assert projection.wipe() > 0
        assert store.get_case(ANGRY_ID) is None
        catch_up(settings, projection)
        rebuilt = store.get_case(ANGRY_ID)
        assert rebuilt is not None
        assert rebuilt.fields == case.fields
        assert sorted(rebuilt.comments) == sorted(case.comments)
    finally:
        projection.close()


# --- Salesforce -----------------------------------------------------------------------


def test_salesforce_sync_retries_reauths_and_dead_letters(
    settings: Settings, fake_sf: FakeSalesforce
) -> None:
    publish_demo(settings)
    store = sf_store(fake_sf)
    projection = CrmProjection(store, settings)  # ledger: settings.crm_sqlite_path
    deadletters = TopicWatcher(settings, projection._topics.deadletter)
    try:
        store._client()  # log in, then expire that session: the first call gets a 401
        fake_sf.expire_session()
        fake_sf.fail_next("limit", 500)
        catch_up(settings, projection)
        case = store.get_case(ANGRY_ID)
        assert case is not None
        assert case.fields["status"] == "Closed"
        assert case.fields["origin"] == "web_chat"
        assert case.fields["case_ref"].startswith("case-")
        assert any("2/5: too slow" in c for c in case.comments)
        assert store.retries == 2 and store.logins == 2 and fake_sf.state.logins == 2
        assert [c[2] for c in fake_sf.state.calls[:4]] == [200, 401, 200, 403]
        comments = len(fake_sf.state.comments)

        # Redelivery (whole log) and a rebuild: upserts are idempotent, no comment repeats.
        calls = len(fake_sf.state.calls)
        projection.apply(everything(settings, projection))
        assert len(fake_sf.state.calls) == calls
        projection.wipe()
        catch_up(settings, projection)
        assert len(fake_sf.state.comments) == comments
        assert len(fake_sf.state.cases) == 1

        # A permanent error dead-letters its event; the next one is still applied.
        bad, good = escalation("bad-conversation", 1), escalation("good-conversation", 2)
        publish(settings, [bad])
        fake_sf.fail_next("bad_field")
        catch_up(settings, projection)
        publish(settings, [good])
        catch_up(settings, projection)
        wait_for(lambda: deadletters.count() == 1, 20, "the dead letter")
        (rejected,) = deadletters.of_type("EventRejected")
        assert isinstance(rejected, EventRejected)
        assert rejected.stage == "crm" and rejected.error_type == "PermanentCrmError"
        assert "INVALID_FIELD" in rejected.reason
        assert rejected.envelope.conversation_id == "bad-conversation"
        assert store.get_case(external_id(TENANT, "bad-conversation")) is None
        assert store.get_case(external_id(TENANT, "good-conversation")) is not None
        assert projection.counts["rejected"] == 1
    finally:
        deadletters.close()
        projection.close()
