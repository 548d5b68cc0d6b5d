-- The KPI queries of kpis.sql and the dashboard's messages_hourly, over the rollup tables
-- (schema.sql) instead of the raw events: same names, same parameters, same columns and
-- the same numbers when since and until are whole UTC hours (every rollup row is one
-- tenant-hour of occurred_at), which is when compute_kpis and the dashboard use them.
-- Averages are sums over counts here, so a float may differ from kpis.sql's avg() in
-- its last bits. Definitions: see kpis.sql. The hour columns are DateTime: the range is
-- compared as DateTime (exact for whole hours), not each row converted to DateTime64;
-- `saturate` keeps a range past 2106 (the CLI's open end) from wrapping around.

-- name: summary
-- Conversations: rollup_conversation_outcomes holds each conversation's outcome flags,
-- its 'clarify' decisions and its first and last hour (read through FINAL: after the idle
-- compaction it is one part, which FINAL does not merge again). A conversation whose
-- hours all lie in the range counts with that row, with no GROUP BY (`inside`, one pass,
-- which also counts the conversations that cross since or until); only those are summed
-- per hour from rollup_conversations, over their hours inside the range (`crossing`: not
-- read at all when there are none: both of its reads test `inside.5 > 0`, a constant).
-- Flags: 1 message, 2 reply, 4 escalated, 8 closed unresolved; auto-resolved is "a reply,
-- not escalated, not closed unresolved": flags & 14 = 2.
WITH
    (
        SELECT tuple(
            countIf(inside),
            countIf(inside AND bitTest(flags, 2)),
            countIf(inside AND bitAnd(flags, 14) = 2),
            countIf(inside AND bitAnd(flags, 14) = 2
                    AND n_clarifications <= {max_clarifications:UInt32}),
            countIf(NOT inside))
        FROM (
            SELECT flags, n_clarifications,
                   first_hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC')
                   AND last_hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
                   AND bitTest(flags, 0) AS inside
            FROM analytics.rollup_conversation_outcomes FINAL
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
                  FROM analytics.rollup_conversation_outcomes FINAL
                  WHERE inside.5 > 0
                    AND tenant_id = {tenant:String}
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
    -- Each message's first MessageReceived and first DecisionMade (rollup_message_times,
    -- through FINAL: a message whose events came in several batches and have not merged
    -- yet is merged here); both must lie in the range (an absent one never does).
    latency AS (
        SELECT
            count() AS samples,
            quantilesExact(0.5, 0.9, 0.99)(
                toUnixTimestamp64Milli(decided.1) - toUnixTimestamp64Milli(received.1)) AS q
        FROM analytics.rollup_message_times FINAL
        WHERE tenant_id = {tenant:String}
          AND received.2 >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC')
          AND received.2 < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
          AND decided.2 >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC')
          AND decided.2 < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
    )
-- select: the summary columns of kpis.sql (sql.py puts its final SELECT here)
SETTINGS do_not_merge_across_partitions_select_final = 1, date_time_overflow_behavior = 'saturate';

-- name: breakdowns
-- kpis.sql's decisions, escalation_reasons, intent_mix, sentiment_hourly and channels in
-- one query: one scan of rollup_hourly (a scan costs a few ms whatever its size, and there
-- were five), one row with an array per breakdown, each item a row of that query (a named
-- tuple: a JSON object with its columns), in its order. Inner rows: one per metric and
-- dimensions, the sentiment per hour (labels summed apart).
SELECT
    CAST(arraySort(r -> (-r.2, r.1), groupArrayIf((key1, cnt), metric = 'action')),
         'Array(Tuple(action String, decisions UInt64))') AS decisions,
    CAST(arraySort(r -> (-r.3, r.1, r.2), groupArrayIf((key1, key2, cnt), metric = 'escalation')),
         'Array(Tuple(reason String, priority String, cases UInt64))') AS escalation_reasons,
    CAST(arraySort(r -> (-r.2, r.1), groupArrayIf((key1, cnt, cnt / total), metric = 'intent')),
         'Array(Tuple(top_intent String, messages UInt64, share Float64))') AS intent_mix,
    CAST(arraySort(r -> r.1, groupArrayIf((hour_key, cnt, s1 / c1, s2 / c2, negative, neutral,
                                            positive), metric = 'sentiment')),
         'Array(Tuple(hour DateTime(\'UTC\'), messages UInt64, avg_frustration Float64,
                      avg_valence Float64, negative UInt64, neutral UInt64, positive UInt64))')
        AS sentiment_hourly,
    CAST(arraySort(r -> (-r.2, r.1), groupArrayIf((key1, cnt), metric = 'channel')),
         'Array(Tuple(channel String, messages UInt64))') AS channels
FROM (
    SELECT
        metric,
        multiIf(metric = 'intent' AND k1 = '', '(none)', metric = 'sentiment', '',
                toString(k1)) AS key1,
        toString(k2) AS key2,
        if(metric = 'sentiment', hour, toDateTime(0, 'UTC')) AS hour_key,
        sum(n) AS cnt,
        sum(cnt) OVER (PARTITION BY metric) AS total,
        sum(rollup_hourly.s1) AS s1,
        sum(rollup_hourly.c1) AS c1,
        sum(rollup_hourly.s2) AS s2,
        sum(rollup_hourly.c2) AS c2,
        sumIf(n, k1 = 'negative') AS negative,
        sumIf(n, k1 = 'neutral') AS neutral,
        sumIf(n, k1 = 'positive') AS positive
    FROM analytics.rollup_hourly
    WHERE tenant_id = {tenant:String}
      AND metric IN ('action', 'escalation', 'intent', 'sentiment', 'channel')
      AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
    GROUP BY metric, key1, key2, hour_key
)
SETTINGS date_time_overflow_behavior = 'saturate';

-- name: messages_hourly
SELECT hour, sum(n) AS messages
FROM analytics.rollup_hourly
WHERE tenant_id = {tenant:String} AND metric = 'type' AND k1 = 'MessageReceived'
  AND hour >= toDateTime({since:DateTime64(3, 'UTC')}, 'UTC') AND hour < toDateTime({until:DateTime64(3, 'UTC')}, 'UTC')
GROUP BY hour
ORDER BY hour WITH FILL STEP toIntervalHour(1)
SETTINGS date_time_overflow_behavior = 'saturate';
