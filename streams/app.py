"""The live driver: a Faust app whose agents are thin shells around ``streams.steps``.

Delivery guarantee: at-least-once plus deterministic output ids and dedup by event id
in every reader (Faust's ``exactly_once`` has open bugs: faust-streaming/faust#517,
#440, #323). Faust flushes the producer before it commits offsets, so an output is
on the log before its input's offset is committed; the decide agent also waits for its
states' changelog records before its inputs can be committed (see ``decide_batch``), so a
redelivered input meets the state it was first decided on and re-emits byte-identical
outputs (see ``processors.conversation.handle``). ``worker_instance_id`` gives the worker
static group membership, so a restarted worker resumes at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from typing import Any

import faust

from events.codec import AvroCodec
from events.decisions import DecisionMade
from processors.conversation import ConversationState
from processors.ports import IntentSentimentModel
from streams import metrics
from streams.bootstrap import build_actor
from streams.faust_transport import Transport
from streams.settings import Settings
from streams.steps import Output, Record, Steps
from streams.topics import Topics

log = logging.getLogger(__name__)

TABLE_NAME = "conversations"


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{TABLE_NAME}-changelog"


def create_app(
    settings: Settings, model: IntentSentimentModel, codec: AvroCodec | None = None
) -> faust.App:
    """Build the Faust app (no connection is made until the worker starts)."""
    topics = Topics(settings.topic_prefix)
    steps = Steps(
        codec or AvroCodec(),
        topics,
        model,
        actor=lambda: build_actor(settings, read_back=settings.act_read_back),
    )
    steps.on_rejected = lambda e: metrics.DEAD_LETTERS.labels(e.stage, e.error_type).inc()
    datadir = settings.data_dir / "faust" / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        broker_commit_interval=settings.commit_interval_s,
        consumer_group_instance_id=settings.worker_instance_id,
        processing_guarantee="at_least_once",
        producer_linger=settings.producer_linger_ms / 1000,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        table_standby_replicas=0,
        topic_disable_leader=True,
        datadir=str(datadir),
    )

    # a partition with nothing committed restarts from its beginning (faust_transport.py)
    app.transport = Transport(app.conf.broker_consumer, app)

    def topic(name: str) -> Any:
        return app.topic(name, partitions=settings.partitions, key_type=bytes, value_type=bytes)

    inbound, enriched = topic(topics.inbound), topic(topics.enriched)
    actions = topic(topics.actions)
    table = app.Table(
        TABLE_NAME,
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        # changelog partition = the producer's partitioner on the key, which is how
        # the enriched topic is partitioned too; needed because batches span partitions
        use_partitioner=True,
    )
    changelog = changelog_topic(settings)
    positions: dict[tuple[str, int], int] = {}
    inference = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inference")
    out_counters = {name: metrics.EVENTS_OUT.labels(name) for name in topics.all()}
    in_counters = {name: metrics.EVENTS_IN.labels(name, "live") for name in topics.all()}
    enrich_time = metrics.PROCESSING.labels("enrich")
    decide_time = metrics.PROCESSING.labels("decide")
    act_time = metrics.PROCESSING.labels("act")
    # workflows and answers do blocking I/O (SMTP, LLM calls): their own thread
    acting = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="act")

    async def publish(outputs: list[Output]) -> list[Any]:
        """Hand ``outputs`` to the producer; returns futures that resolve on the ack."""
        acks = []
        for out in outputs:
            acks.append(
                await app.producer.send(
                    out.topic, out.key, out.value, partition=None, timestamp=None, headers=None
                )
            )
            out_counters[out.topic].inc()
        return acks

    def record_of(event: Any, name: str) -> Record:
        msg = event.message
        positions[(name, msg.partition)] = msg.offset
        in_counters[name].inc()
        return Record(
            name, msg.partition, msg.offset, event.key, event.value, int(msg.timestamp * 1000)
        )

    async def enrich_agent(stream: Any) -> None:
        batches = stream.take_events(settings.batch_max, within=settings.batch_within_s)
        async for events in batches:
            started = time.perf_counter()
            records = [record_of(e, topics.inbound) for e in events]
            # inference runs off the event loop (onnxruntime releases the GIL), so
            # consuming, deciding and producing go on meanwhile
            outputs = await asyncio.get_running_loop().run_in_executor(
                inference, steps.enrich_records, records
            )
            await publish(outputs)
            enrich_time.observe((time.perf_counter() - started) / len(events))

    async def decide_agent(stream: Any) -> None:
        batches = stream.take_events(settings.batch_max, within=settings.batch_within_s)
        async for events in batches:
            await decide_batch(events)

    async def act_agent(stream: Any) -> None:
        """One action at a time, in order, off the event loop. With ``act_read_back`` (the
        default) a request redelivered after a crash or a rebalance is not performed
        again: the act stage's ledger reads its recorded result back from the log and
        re-emits it (same ids; the decider ignores a second one). Without it, an action
        is performed at least once.

        Results are handed to the producer without waiting for their acknowledgements
        (Faust flushes the producer before it commits the requests' offsets, so a
        committed request has its result on the log): waiting for each one capped the
        stage at one action per produce round trip (about 70 a second on a loaded
        broker), and a full act queue stalls the worker's single consumer for every
        agent."""
        async for event in stream.events():
            started = time.perf_counter()
            record = record_of(event, topics.actions)
            outputs = await asyncio.get_running_loop().run_in_executor(
                acting, steps.act_record, record
            )
            await publish(outputs)
            act_time.observe(time.perf_counter() - started)

    roles = {r.strip() for r in settings.worker_agents.split(",") if r.strip()}
    if unknown := roles - {"enrich", "decide", "act"}:
        raise ValueError(f"unknown worker agents {sorted(unknown)}; use any of enrich, decide, act")
    if "enrich" in roles:
        app.agent(inbound, name="enrich")(enrich_agent)
    if "decide" in roles:
        app.agent(enriched, name="decide")(decide_agent)
    if "act" in roles:
        app.agent(actions, name="act")(act_agent)

        async def on_assigned(sender: Any, assigned: Any, **_: Any) -> None:
            # the ends of the actions partitions now: a request below may be a redelivery
            mine = [(tp.topic, tp.partition) for tp in assigned if tp.topic == topics.actions]
            await asyncio.get_running_loop().run_in_executor(
                acting, steps.actor.partitions_assigned, mine
            )

        app.on_partitions_assigned.connect(on_assigned)

        @app.task  # type: ignore[untyped-decorator]
        async def warm_actor() -> None:
            # workflows and responder built at start, not on the first customer's turn; one
            # that cannot be built is built again (and fails visibly) on its first action
            try:
                await asyncio.get_running_loop().run_in_executor(acting, steps.actor.warm)
            except Exception as exc:
                log.warning("act stage adapters not built at start: %s", exc)

    async def decide_batch(events: list[Any]) -> None:
        """Decide a batch; write states only once every output is acknowledged, and
        return (so the batch's inputs can be acked and committed) only once every state
        is acknowledged too.

        So a state that says "message seen" implies its outputs are on the log, and a
        redelivered message can safely yield nothing; and a committed input implies its
        state is on the changelog, so a restarted worker decides the next message on
        the state the killed one had (same decision, same bytes).

        The states go to the changelog through the producer, not through ``table[key] =``:
        Faust queues table writes in its producer buffer, whose flush before a commit
        gives up after 0.1 s without a send ("producer buffer full" under load), so
        offsets could be committed while the states of their messages were still queued.
        """
        started = time.perf_counter()
        states: dict[bytes, ConversationState] = {}
        changed: set[bytes] = set()
        acks: list[Any] = []
        for event in events:
            record = record_of(event, topics.enriched)
            key = record.key or b""
            state = states.get(key)
            if state is None:
                stored = table.get(key)
                state = ConversationState.from_dict(json.loads(stored) if stored else None)
            new_state, outputs = steps.decide_record(state, record)
            states[key] = new_state
            if new_state is not state:
                changed.add(key)
            acks.extend(await publish(outputs))
            for out in outputs:
                if isinstance(out.event, DecisionMade):
                    metrics.DECISIONS.labels(out.event.action, out.event.reason).inc()
            metrics.END_TO_END.observe(max(0.0, time.time() - record.timestamp_ms / 1000))
        if acks:
            await asyncio.gather(*acks)
        written = []
        for key in changed:
            value = json.dumps(states[key].to_dict(), separators=(",", ":")).encode()
            # the changelog record Faust would write (raw key and value, partitioned by
            # key like the enriched topic), then the local store without a second record
            written.append(
                await app.producer.send(
                    changelog, key, value, partition=None, timestamp=None, headers=None
                )
            )
            table.data[key] = value
        if written:
            await asyncio.gather(*written)
        decide_time.observe((time.perf_counter() - started) / len(events))

    @app.task  # type: ignore[untyped-decorator]
    async def quiet_client_logs() -> None:
        # aiokafka logs every produce request at DEBUG; building those records costs
        # more than a fifth of the worker's CPU when its logger inherits DEBUG.
        for name in ("aiokafka", "faust.transport", "mode"):
            logging.getLogger(name).setLevel(max(logging.getLogger().level, logging.INFO))

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            done = positions.get((tp.topic, tp.partition))
            if highwater is not None and done is not None:
                lag = max(0, highwater - done - 1)
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)

    return app
