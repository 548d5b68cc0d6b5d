"""The shared steps and the log driver, in-process: dead letters and deterministic output."""

from __future__ import annotations

from events.codec import AvroCodec
from events.delivery import EventRejected
from processors.baseline import BaselineLexicalModel
from replay.archive import read_archive, write_archive
from replay.demo import scenario_records
from replay.driver import LogDriver
from streams.steps import Record, Steps
from streams.topics import Topics


def make_steps() -> Steps:
    return Steps(AvroCodec(), Topics("t"), BaselineLexicalModel())


def test_garbage_becomes_a_dead_letter_with_the_reason_and_bytes() -> None:
    steps = make_steps()
    record = Record(
        "t.conversations.inbound", 2, 17, b"acme/c9", b"\xde\xad\xbe\xef!", 1_700_000_000_000
    )
    [out] = steps.enrich_record(record)
    assert out.topic == "t.deadletter"
    event = steps.codec.decode(out.value)
    assert isinstance(event, EventRejected)
    assert (event.source_topic, event.source_partition, event.source_offset) == (
        "t.conversations.inbound",
        2,
        17,
    )
    assert event.original_value == b"\xde\xad\xbe\xef!"
    assert event.original_key == b"acme/c9"
    assert "magic byte" in event.reason
    assert (event.envelope.tenant_id, event.envelope.conversation_id) == ("acme", "c9")
    # the same record dead-letters to the same bytes (dedup by id works downstream)
    assert steps.enrich_record(record)[0].value == out.value


def test_a_failing_processor_dead_letters_and_the_stream_goes_on() -> None:
    steps = make_steps()

    class Exploding(BaselineLexicalModel):
        def predict(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("model exploded")

    broken = Steps(steps.codec, steps.topics, Exploding())
    records = list(scenario_records(steps))
    outs = broken.enrich_record(records[0])
    assert [o.topic for o in outs] == ["t.deadletter"]
    rejected = steps.codec.decode(outs[0].value)
    assert isinstance(rejected, EventRejected) and rejected.stage == "enrich"
    assert rejected.reason == "model exploded"
    assert steps.enrich_record(records[1])[0].topic == "t.conversations.enriched"


def test_log_driver_is_deterministic_and_archives_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    steps = make_steps()
    records = list(scenario_records(steps))
    path = tmp_path / "inbound.avro"
    assert write_archive(path, records) == len(records)
    assert list(read_archive(path)) == records
    first = [(o.topic, o.key, o.value) for o in LogDriver(steps).run(records)]
    second = [(o.topic, o.key, o.value) for o in LogDriver(make_steps()).run(read_archive(path))]
    assert first == second
    decisions = [o for o in first if o[0] == "t.conversations.decisions"]
    assert len([d for d in decisions]) >= len(records)
