-- The analytics store: one raw table of every event, deduplicated by event id.
--
-- Statements are separated by a line that ends with ';' and are all idempotent
-- (IF NOT EXISTS), so applying this file on every start is harmless.
--
-- Everything lives in the database `analytics`; the session's current database stays
-- `default` and holds no table, which the tenant-scoped query guard relies on (an
-- unqualified name there can only be a CTE, never a table).

CREATE DATABASE IF NOT EXISTS analytics;

-- Dedup choice: ReplacingMergeTree keyed on the sorting key, which ends with event_id.
-- An event id fixes the tenant, conversation and time (derived events copy their cause's
-- id and time), so two copies of an event share a sorting key and a day partition and
-- collapse into one: the copy at the highest source_offset (the version column) wins,
-- so a redelivery on the same partition never moves `positions()` (max offset + 1)
-- back. (Lifecycle events are on two topics, inbound and enriched, with one id: when a
-- merge drops the copy that held a partition's last offset, the runner reads that one
-- record again after a restart; harmless.) Merges are eventual, so every read goes
-- through `FINAL` (the tenant_events view below). Insert dedup tokens were rejected: they
-- only catch a byte-identical block, and a redelivered event can arrive in a batch cut
-- differently, or at another offset (a worker that crashed re-emits the same event ids).
--
-- Positions are part of the data: a row carries its source topic/partition/offset, and
-- the next offset to read is max(source_offset) + 1 per (topic, partition). The store
-- writes a batch in one INSERT per day partition, in an order that keeps what is stored
-- a prefix of the batch per (topic, partition) (see rows.prefix_safe_runs), so a crash
-- between two INSERTs can only make the runner read a record again, never skip one.
CREATE TABLE IF NOT EXISTS analytics.events
(
    event_id         String,
    event_type       LowCardinality(String),
    schema_version   UInt16,
    tenant_id        LowCardinality(String),
    conversation_id  String,
    occurred_at      DateTime64(3, 'UTC'),
    correlation_id   String,
    causation_id     String,
    producer         LowCardinality(String),
    message_id       String,
    channel          LowCardinality(String),
    action           LowCardinality(String),
    reason           LowCardinality(String),
    intent           LowCardinality(String),
    confidence       Nullable(Float64),
    sentiment_label  LowCardinality(String),
    frustration      Nullable(Float64),
    valence          Nullable(Float64),
    rating           Nullable(Int16),
    resolved         Nullable(Bool),
    priority         LowCardinality(String),
    case_id          String,
    reply_kind       LowCardinality(String),
    delivery_status  LowCardinality(String),
    model_name       LowCardinality(String),
    model_version    LowCardinality(String),
    record_time      DateTime64(3, 'UTC') COMMENT 'Kafka record timestamp (latency)',
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    payload          String CODEC(ZSTD(3)) COMMENT 'the whole event as JSON'
)
ENGINE = ReplacingMergeTree(source_offset)
PARTITION BY toDate(occurred_at)
ORDER BY (tenant_id, conversation_id, occurred_at, event_id);

-- The deduplicated events of one tenant with occurred_at in [since, until). Every KPI
-- and every tenant-scoped ad-hoc query reads through this view, never the raw table.
-- (A parameterized view: `FROM analytics.tenant_events(tenant = 'acme', since = ..., until = ...)`;
-- the WHERE clause still reaches the primary key and the partition pruning.)
CREATE OR REPLACE VIEW analytics.tenant_events AS
SELECT *
FROM analytics.events FINAL
WHERE tenant_id = {tenant:String}
  AND occurred_at >= {since:DateTime64(3, 'UTC')}
  AND occurred_at < {until:DateTime64(3, 'UTC')};

-- The ingest path (see store.py). Per batch:
--   1. the batch goes into analytics.stage (one row per record: event id, type and time,
--      the record's position, the whole event as JSON decoded from Avro by the
--      projection);
--   2. INSERT INTO analytics.events_in SELECT the staged events whose (occurred_at,
--      event_id) is not in analytics.event_ids yet, one copy per event id: only
--      first-seen events go on, so everything below counts each event once;
--   3. the position (next offset per topic partition) goes into analytics.positions.
-- Step 2 is one INSERT: events_in (Null) -> events_in_mv derives the typed columns from
-- the JSON -> events_new (Null) -> views into analytics.events, analytics.event_ids
-- and the rollups. The position is written last, so a crash before it only makes the
-- runner read the batch again, and step 2 then finds every event already stored.
-- (ClickHouse does not make the targets of one INSERT atomic together: a process dying
-- inside step 2 can leave a rollup short of that batch; `casestream projections
-- rebuild analytics` restores it.)
CREATE TABLE IF NOT EXISTS analytics.stage
(
    event_id         String,
    event_type       LowCardinality(String),
    occurred_at      DateTime64(3, 'UTC'),
    record_time      DateTime64(3, 'UTC'),
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    payload          String
)
ENGINE = Memory;

CREATE TABLE IF NOT EXISTS analytics.events_in AS analytics.stage ENGINE = Null;

CREATE TABLE IF NOT EXISTS analytics.events_new AS analytics.events ENGINE = Null;

-- Every stored event id, ordered by time: an event id fixes occurred_at, so the
-- dedup lookup of a batch reads only the granules around the batch's times.
CREATE TABLE IF NOT EXISTS analytics.event_ids
(
    occurred_at DateTime64(3, 'UTC'),
    event_id    String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (occurred_at, event_id);

-- Next offset per (topic, partition), written after the batch's data.
CREATE TABLE IF NOT EXISTS analytics.positions
(
    source_topic     LowCardinality(String),
    source_partition UInt32,
    next             UInt64
)
ENGINE = ReplacingMergeTree(next)
ORDER BY (source_topic, source_partition);

-- The JSON is parsed once, into a tuple of every field any mapping reads (a field an
-- event type does not have comes out as its default and is not used for that type).
-- The mapping is rows.row_for's; a unit test checks that both give the same rows.
CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.events_in_mv TO analytics.events_new AS
WITH JSONExtract(payload, 'Tuple(
        envelope Tuple(event_id String, schema_version UInt16, tenant_id String,
                       conversation_id String, correlation_id String,
                       causation_id Nullable(String), producer String),
        message_id String, channel String, action String, reason String,
        intent Nullable(String), confidence Nullable(Float64), sentiment_label String,
        frustration Nullable(Float64), rating Nullable(Int16), resolved Nullable(Bool),
        priority String, case_id String, kind String, status String,
        intents Array(Tuple(label String, score Nullable(Float64))),
        sentiment Tuple(label String, valence Nullable(Float64), frustration Nullable(Float64)),
        model Tuple(name String, version String))') AS j
SELECT
    event_id,
    event_type,
    j.envelope.schema_version AS schema_version,
    j.envelope.tenant_id AS tenant_id,
    j.envelope.conversation_id AS conversation_id,
    occurred_at,
    j.envelope.correlation_id AS correlation_id,
    ifNull(j.envelope.causation_id, '') AS causation_id,
    j.envelope.producer AS producer,
    if(event_type IN ('MessageReceived', 'MessageEnriched', 'DecisionMade',
                      'ClarificationRequested', 'ReplyRequested', 'CaseEscalated'),
       j.message_id, '') AS message_id,
    if(event_type IN ('ConversationStarted', 'MessageReceived', 'MessageEnriched',
                      'ReplyRequested', 'ReplyDelivered'), j.channel, '') AS channel,
    if(event_type = 'DecisionMade', j.action, '') AS action,
    if(event_type IN ('DecisionMade', 'CaseEscalated', 'ConversationClosed', 'EventRejected'),
       j.reason, '') AS reason,
    multiIf(event_type = 'MessageEnriched', if(empty(j.intents), '', j.intents[1].label),
            event_type IN ('DecisionMade', 'CaseEscalated'), ifNull(j.intent, ''),
            '') AS intent,
    multiIf(event_type = 'MessageEnriched', if(empty(j.intents), NULL, j.intents[1].score),
            event_type IN ('DecisionMade', 'CaseEscalated'), j.confidence,
            NULL) AS confidence,
    multiIf(event_type = 'MessageEnriched', j.sentiment.label,
            event_type = 'DecisionMade', j.sentiment_label, '') AS sentiment_label,
    multiIf(event_type = 'MessageEnriched', j.sentiment.frustration,
            event_type = 'DecisionMade', j.frustration, NULL) AS frustration,
    if(event_type = 'MessageEnriched', j.sentiment.valence, NULL) AS valence,
    if(event_type = 'FeedbackReceived', j.rating, NULL) AS rating,
    if(event_type = 'ConversationClosed', j.resolved, NULL) AS resolved,
    if(event_type = 'CaseEscalated', j.priority, '') AS priority,
    if(event_type = 'CaseEscalated', j.case_id, '') AS case_id,
    if(event_type = 'ReplyRequested', j.kind, '') AS reply_kind,
    if(event_type = 'ReplyDelivered', j.status, '') AS delivery_status,
    if(event_type IN ('MessageEnriched', 'DecisionMade'), j.model.name, '') AS model_name,
    if(event_type IN ('MessageEnriched', 'DecisionMade'), j.model.version, '') AS model_version,
    record_time,
    source_topic,
    source_partition,
    source_offset,
    payload
FROM analytics.events_in;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.events_store_mv TO analytics.events AS
SELECT * FROM analytics.events_new;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.event_ids_mv TO analytics.event_ids AS
SELECT occurred_at, event_id FROM analytics.events_new;

-- Rollups: what the dashboard and the KPIs read for whole-hour ranges (rollups.sql),
-- fed through the Null table rollup_feed by views over first-seen events only, so plain
-- sums are exact. Hours are toStartOfHour(occurred_at), UTC; derived events carry their
-- cause's occurred_at. Recomputing them (store.refresh_rollups): truncate the rollup
-- tables, INSERT INTO analytics.rollup_feed SELECT * FROM analytics.events FINAL.
CREATE TABLE IF NOT EXISTS analytics.rollup_feed AS analytics.events ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.rollup_feed_mv TO analytics.rollup_feed AS
SELECT * FROM analytics.events_new;

-- Counts per tenant, hour and one of these metrics (k1, k2: its dimensions):
--   type       k1 event type, k2 model name (MessageEnriched, DecisionMade)
--   action     k1 DecisionMade action
--   escalation k1 reason, k2 priority (CaseEscalated)
--   intent     k1 top intent (MessageEnriched)
--   channel    k1 channel (MessageReceived)
--   sentiment  k1 label (MessageEnriched); s1/c1 frustration sum/count, s2/c2 valence
--   rating     k1 rating (FeedbackReceived); s1 rating sum
CREATE TABLE IF NOT EXISTS analytics.rollup_hourly
(
    tenant_id LowCardinality(String),
    hour      DateTime('UTC'),
    metric    LowCardinality(String),
    k1        LowCardinality(String),
    k2        LowCardinality(String),
    n         UInt64,
    s1        Float64,
    c1        UInt64,
    s2        Float64,
    c2        UInt64
)
ENGINE = SummingMergeTree((n, s1, c1, s2, c2))
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, metric, hour, k1, k2);

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.rollup_hourly_mv TO analytics.rollup_hourly AS
SELECT
    tenant_id,
    toStartOfHour(occurred_at) AS hour,
    m.1 AS metric,
    m.2 AS k1,
    m.3 AS k2,
    toUInt64(1) AS n,
    m.4 AS s1,
    m.5 AS c1,
    m.6 AS s2,
    m.7 AS c2
FROM analytics.rollup_feed
ARRAY JOIN arrayConcat(
    [('type', toString(event_type), toString(model_name), 0., toUInt64(0), 0., toUInt64(0))],
    if(event_type = 'DecisionMade',
       [('action', toString(action), '', 0., toUInt64(0), 0., toUInt64(0))], []),
    if(event_type = 'CaseEscalated',
       [('escalation', toString(reason), toString(priority), 0., toUInt64(0), 0., toUInt64(0))],
       []),
    if(event_type = 'MessageEnriched',
       [('intent', toString(intent), '', 0., toUInt64(0), 0., toUInt64(0)),
        ('sentiment', toString(sentiment_label), '',
         ifNull(frustration, 0.), toUInt64(isNotNull(frustration)),
         ifNull(valence, 0.), toUInt64(isNotNull(valence)))], []),
    if(event_type = 'MessageReceived',
       [('channel', toString(channel), '', 0., toUInt64(0), 0., toUInt64(0))], []),
    if(event_type = 'FeedbackReceived' AND rating IS NOT NULL,
       [('rating', toString(rating), '', toFloat64(assumeNotNull(rating)), toUInt64(1), 0.,
         toUInt64(0))], [])
) AS m;

-- Per tenant, hour and conversation: what the conversation-level KPIs need.
CREATE TABLE IF NOT EXISTS analytics.rollup_conversations
(
    tenant_id        LowCardinality(String),
    hour             DateTime('UTC'),
    conversation_id  String,
    n_messages       UInt32,
    n_replies        UInt32,
    n_clarifications UInt32,
    n_escalations    UInt32,
    n_unresolved     UInt32
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, conversation_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.rollup_conversations_mv
TO analytics.rollup_conversations AS
SELECT
    tenant_id,
    toStartOfHour(occurred_at) AS hour,
    conversation_id,
    toUInt32(event_type = 'MessageReceived') AS n_messages,
    toUInt32(event_type = 'DecisionMade' AND action = 'reply') AS n_replies,
    toUInt32(event_type = 'DecisionMade' AND action = 'clarify') AS n_clarifications,
    toUInt32(event_type = 'CaseEscalated'
             OR (event_type = 'DecisionMade' AND action = 'escalate')) AS n_escalations,
    toUInt32(event_type = 'ConversationClosed' AND resolved = false) AS n_unresolved
FROM analytics.rollup_feed
WHERE event_type IN ('MessageReceived', 'DecisionMade', 'CaseEscalated', 'ConversationClosed');

-- Per tenant and conversation, over all its hours: its first and last hour, what it saw
-- (flags, a bit each: 1 a MessageReceived, 2 a 'reply' decision, 4 an escalation (a
-- CaseEscalated or an 'escalate' decision), 8 a close with resolved = false) and its
-- 'clarify' decisions. Rows of one conversation merge; reads go through FINAL (after the
-- idle compaction one part, which FINAL reads without merging). The summary counts a
-- conversation whose hours all lie in the range from this one row: narrow columns (13
-- bytes a conversation), since the dashboard reads every conversation of a tenant.
CREATE TABLE IF NOT EXISTS analytics.rollup_conversation_outcomes
(
    tenant_id        LowCardinality(String),
    conversation_id  String,
    first_hour       SimpleAggregateFunction(min, DateTime('UTC')),
    last_hour        SimpleAggregateFunction(max, DateTime('UTC')),
    flags            SimpleAggregateFunction(groupBitOr, UInt8),
    n_clarifications SimpleAggregateFunction(sumWithOverflow, UInt32)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, conversation_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.rollup_conversation_outcomes_mv
TO analytics.rollup_conversation_outcomes AS
SELECT
    tenant_id,
    conversation_id,
    toStartOfHour(occurred_at) AS first_hour,
    toStartOfHour(occurred_at) AS last_hour,
    toUInt8(multiIf(event_type = 'MessageReceived', 1,
                    event_type = 'DecisionMade' AND action = 'reply', 2,
                    event_type = 'CaseEscalated', 4,
                    event_type = 'DecisionMade' AND action = 'escalate', 4,
                    event_type = 'ConversationClosed' AND resolved = false, 8,
                    0)) AS flags,
    toUInt32(event_type = 'DecisionMade' AND action = 'clarify') AS n_clarifications
FROM analytics.rollup_feed
WHERE event_type IN ('MessageReceived', 'DecisionMade', 'CaseEscalated', 'ConversationClosed');

-- Per message: its first MessageReceived and its first DecisionMade, each as (Kafka record
-- time, hour of occurred_at), the first being the earliest record time (the act stage
-- makes a second decision on an action's result, later). The record times give the reply
-- latency, the hours the range. A message without one of them holds (2299-12-31 ...,
-- 2106-02-07 06:28:15) there, past every range and never the min of a real one (not
-- Nullable: the dashboard reads every message of a tenant, and Nullable columns cost a
-- null map each). Rows of one message merge (min); reads go through FINAL.
CREATE TABLE IF NOT EXISTS analytics.rollup_message_times
(
    tenant_id       LowCardinality(String),
    conversation_id String,
    message_id      String,
    received        SimpleAggregateFunction(min, Tuple(DateTime64(3, 'UTC'), DateTime('UTC'))),
    decided         SimpleAggregateFunction(min, Tuple(DateTime64(3, 'UTC'), DateTime('UTC')))
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, conversation_id, message_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.rollup_message_times_mv
TO analytics.rollup_message_times AS
WITH
    (record_time, toDateTime(toStartOfHour(occurred_at), 'UTC')) AS seen,
    (toDateTime64('2299-12-31 23:59:59.999', 3, 'UTC'), toDateTime(4294967295, 'UTC')) AS never
SELECT
    tenant_id,
    conversation_id,
    message_id,
    if(event_type = 'MessageReceived', seen, never) AS received,
    if(event_type = 'DecisionMade', seen, never) AS decided
FROM analytics.rollup_feed
WHERE event_type IN ('MessageReceived', 'DecisionMade') AND message_id != '';

-- Earlier stores: rollup_conversation_totals (UInt64 sums) and rollup_messages (Nullable
-- times, paired each message with the min of its decisions' times separately) are
-- replaced by the two tables above; store.ensure_schema refills the rollups once.
DROP VIEW IF EXISTS analytics.rollup_conversation_totals_mv;
DROP TABLE IF EXISTS analytics.rollup_conversation_totals;
DROP VIEW IF EXISTS analytics.rollup_messages_mv;
DROP TABLE IF EXISTS analytics.rollup_messages;
