-- The KPI queries of kpis.sql and the dashboard's messages_hourly, over the rollup tables
-- (schema.sql) instead of the raw events: same names, same parameters, same columns and
-- the same numbers when since and until are whole UTC hours (every rollup row is one
-- tenant-hour of occurred_at), which is when compute_kpis and the dashboard use them.
-- Averages are sums over counts here, so a float may differ from kpis.sql's avg() in
-- its last bits. Definitions: see kpis.sql. The hour columns are DateTime: the range is
-- compared as DateTime (exact for whole hours), not each row converted to DateTime64;
-- `saturate` keeps a range past 2106 (the CLI's open end) from wrapping around.

-- name: summary
-- Conversations: rollup_conversation_totals holds each conversation's sums and its first
-- and last hour (read through FINAL: after the idle compaction it is one part, which
-- FINAL does not merge again). A conversation whose hours all lie in the range counts
-- with its totals, with no GROUP BY (`inside`, one pass, which also counts the
-- conversations that cross since or until); only those are summed per hour from
-- rollup_conversations, over their hours inside the range (`crossing`: not read at all
-- when there are none).
WITH
    (
        SELECT tuple(
            countIf(inside),
            countIf(inside AND is_escalated),
            countIf(inside AND is_auto_resolved),
            countIf(inside AND is_auto_resolved
                    AND n_clarifications <= {max_clarifications:UInt32}),
            countIf(NOT inside))
        FROM (
            SELECT n_clarifications,
                   first_hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC')
                   AND last_hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC') AND n_messages > 0 AS inside,
                   n_escalations > 0 AS is_escalated,
                   NOT is_escalated AND n_replies > 0 AND n_unresolved = 0 AS is_auto_resolved
            FROM analytics.rollup_conversation_totals FINAL
            WHERE tenant_id = {tenant:String}
              AND first_hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
              AND last_hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC')
        )
    ) AS inside,
    crossing AS (
        SELECT
            count() AS conversations,
            countIf(is_escalated) AS escalated,
            countIf(is_auto_resolved) AS auto_resolved,
            countIf(is_auto_resolved AND clarifications <= {max_clarifications:UInt32}) AS fcr
        FROM (
            SELECT
                sum(n_messages) AS messages,
                sum(n_replies) AS replies,
                sum(n_clarifications) AS clarifications,
                sum(n_escalations) > 0 AS is_escalated,
                sum(n_unresolved) > 0 AS is_unresolved,
                NOT is_escalated AND replies > 0 AND NOT is_unresolved AS is_auto_resolved
            FROM analytics.rollup_conversations
            WHERE inside.5 > 0
              AND tenant_id = {tenant:String}
              AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
              AND conversation_id IN (
                  SELECT conversation_id
                  FROM analytics.rollup_conversation_totals FINAL
                  WHERE tenant_id = {tenant:String}
                    AND first_hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
                    AND last_hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC')
                    AND (first_hour < toDateTime({since:DateTime64(3, 'UTC')}, 'UTC')
                         OR last_hour >= toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')))
            GROUP BY conversation_id
            HAVING messages > 0
        )
    ),
    conversations AS (
        SELECT
            inside.1 + crossing.conversations AS conversations,
            inside.2 + crossing.escalated AS escalated,
            inside.3 + crossing.auto_resolved AS auto_resolved,
            inside.4 + crossing.fcr AS fcr
        FROM crossing
    ),
    counts AS (
        SELECT
            sumIf(n, metric = 'type' AND k1 = 'MessageReceived') AS messages,
            sumIf(n, metric = 'type' AND k1 = 'DecisionMade') AS decisions,
            sumIf(
                n, metric = 'type' AND k1 = 'DecisionMade'
                AND NOT startsWith(k2, {primary_model_prefix:String})
            ) AS fallbacks,
            sumIf(
                n, metric = 'type' AND k1 = 'MessageEnriched'
                AND NOT startsWith(k2, {free_model_prefix:String})
            ) AS paid_calls,
            sumIf(n, metric = 'type' AND k1 = 'FeedbackReceived') AS ratings,
            sumIf(n, metric = 'rating' AND toInt16OrZero(toString(k1)) >= 4) AS satisfied,
            sumIf(s1, metric = 'rating') / sumIf(n, metric = 'rating') AS avg_rating
        FROM analytics.rollup_hourly
        WHERE tenant_id = {tenant:String} AND metric IN ('type', 'rating')
          AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
    ),
    -- A message's MessageReceived and DecisionMade usually end up in one rollup row
    -- (inserted together or merged since): read those directly; the rows still waiting
    -- for a merge are merged here. (A message has one MessageReceived and one
    -- DecisionMade, so a complete row never has a partial sibling.)
    latency AS (
        SELECT count() AS samples, quantilesExact(0.5, 0.9, 0.99)(ms) AS q
        FROM (
            SELECT
                toUnixTimestamp64Milli(assumeNotNull(decided_time))
                - toUnixTimestamp64Milli(assumeNotNull(received_time)) AS ms
            FROM analytics.rollup_messages
            WHERE tenant_id = {tenant:String}
              AND received_time IS NOT NULL AND decided_time IS NOT NULL
              AND received_at >= {since:DateTime64(3, 'UTC')}
              AND received_at < {until:DateTime64(3, 'UTC')}
              AND decided_at >= {since:DateTime64(3, 'UTC')}
              AND decided_at < {until:DateTime64(3, 'UTC')}
            UNION ALL
            SELECT
                toUnixTimestamp64Milli(assumeNotNull(min(decided_time)))
                - toUnixTimestamp64Milli(assumeNotNull(min(received_time))) AS ms
            FROM analytics.rollup_messages
            WHERE tenant_id = {tenant:String}
              AND (received_time IS NULL OR decided_time IS NULL)
            GROUP BY conversation_id, message_id
            HAVING min(received_at) >= {since:DateTime64(3, 'UTC')}
               AND min(received_at) < {until:DateTime64(3, 'UTC')}
               AND min(decided_at) >= {since:DateTime64(3, 'UTC')}
               AND min(decided_at) < {until:DateTime64(3, 'UTC')}
        )
    )
SELECT
    counts.messages AS messages,
    conversations.conversations AS conversations,
    counts.decisions AS decisions,
    conversations.auto_resolved AS auto_resolved,
    conversations.auto_resolved / nullIf(conversations.conversations, 0) AS deflection_rate,
    conversations.escalated AS escalated,
    conversations.escalated / nullIf(conversations.conversations, 0) AS escalation_rate,
    conversations.fcr AS first_contact_resolved,
    conversations.fcr / nullIf(conversations.conversations, 0) AS fcr_rate,
    counts.ratings AS ratings,
    counts.satisfied / nullIf(counts.ratings, 0) AS csat,
    if(counts.ratings = 0, NULL, counts.avg_rating) AS avg_rating,
    latency.samples AS latency_samples,
    if(latency.samples = 0, NULL, latency.q[1]) AS latency_p50_ms,
    if(latency.samples = 0, NULL, latency.q[2]) AS latency_p90_ms,
    if(latency.samples = 0, NULL, latency.q[3]) AS latency_p99_ms,
    counts.fallbacks AS fallback_decisions,
    counts.fallbacks / nullIf(counts.decisions, 0) AS fallback_rate,
    counts.paid_calls AS paid_model_calls,
    counts.paid_calls * {cost_per_call:Float64} AS model_cost,
    model_cost / nullIf(conversations.auto_resolved, 0) AS cost_per_resolution
FROM conversations CROSS JOIN counts CROSS JOIN latency
SETTINGS do_not_merge_across_partitions_select_final = 1, date_time_overflow_behavior = 'saturate';

-- name: decisions
SELECT k1 AS action, sum(n) AS decisions
FROM analytics.rollup_hourly
WHERE tenant_id = {tenant:String} AND metric = 'action'
  AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
GROUP BY action
ORDER BY decisions DESC, action
SETTINGS date_time_overflow_behavior = 'saturate';

-- name: escalation_reasons
SELECT k1 AS reason, k2 AS priority, sum(n) AS cases
FROM analytics.rollup_hourly
WHERE tenant_id = {tenant:String} AND metric = 'escalation'
  AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
GROUP BY reason, priority
ORDER BY cases DESC, reason, priority
SETTINGS date_time_overflow_behavior = 'saturate';

-- name: intent_mix
SELECT
    if(k1 = '', '(none)', toString(k1)) AS top_intent,
    sum(n) AS messages,
    messages / sum(messages) OVER () AS share
FROM analytics.rollup_hourly
WHERE tenant_id = {tenant:String} AND metric = 'intent'
  AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
GROUP BY top_intent
ORDER BY messages DESC, top_intent
SETTINGS date_time_overflow_behavior = 'saturate';

-- name: sentiment_hourly
SELECT
    hour,
    sum(n) AS messages,
    sum(s1) / sum(c1) AS avg_frustration,
    sum(s2) / sum(c2) AS avg_valence,
    sumIf(n, k1 = 'negative') AS negative,
    sumIf(n, k1 = 'neutral') AS neutral,
    sumIf(n, k1 = 'positive') AS positive
FROM analytics.rollup_hourly
WHERE tenant_id = {tenant:String} AND metric = 'sentiment'
  AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
GROUP BY hour
ORDER BY hour
SETTINGS date_time_overflow_behavior = 'saturate';

-- name: channels
SELECT k1 AS channel, sum(n) AS messages
FROM analytics.rollup_hourly
WHERE tenant_id = {tenant:String} AND metric = 'channel'
  AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
GROUP BY channel
ORDER BY messages DESC, channel
SETTINGS date_time_overflow_behavior = 'saturate';

-- name: messages_hourly
SELECT hour, sum(n) AS messages
FROM analytics.rollup_hourly
WHERE tenant_id = {tenant:String} AND metric = 'type' AND k1 = 'MessageReceived'
  AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
GROUP BY hour
ORDER BY hour WITH FILL STEP toIntervalHour(1)
SETTINGS date_time_overflow_behavior = 'saturate';
