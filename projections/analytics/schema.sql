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
