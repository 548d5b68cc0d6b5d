-- KPI queries, one per `-- name:` block, all over analytics.tenant_events (deduplicated
-- by event id, one tenant, occurred_at in [since, until)). Parameters:
--   {tenant:String} {since:DateTime64(3, 'UTC')} {until:DateTime64(3, 'UTC')}
--   {max_clarifications:UInt32}   first-contact resolution allows at most N clarifications
--   {cost_per_call:Float64}       cost of one paid model call
--   {primary_model_prefix:String} decisions by models outside this prefix are fallbacks
--   {free_model_prefix:String}    model calls under this prefix cost nothing (baseline)
-- Conversation-level KPIs count conversations with at least one MessageReceived in the
-- range, and only their events inside the range.

-- name: summary
-- Definitions (per conversation, over its events in the range):
--   escalated      a CaseEscalated, or a DecisionMade with action 'escalate'
--   auto_resolved  (deflected) not escalated, at least one 'reply' decision, and not
--                  closed with resolved = false
--   first-contact resolution: auto_resolved and at most {max_clarifications} 'clarify'
--                  decisions, i.e. the agent solved it in one contact, without a human
--                  and without going back and forth
--   CSAT           share of FeedbackReceived ratings of 4 or 5 (1-5 scale)
--   reply latency  MessageReceived record time -> the record time of the message's first
--                  DecisionMade (Kafka timestamps, so it includes queueing; the act stage
--                  makes a second decision on an action's result, which does not count),
--                  when both occurred in the range; exact percentiles in ms
--   fallback rate  share of DecisionMade whose model name does not start with
--                  {primary_model_prefix} ('baseline' for now: the baseline is primary)
--   cost per resolution  paid model calls (MessageEnriched whose model name does not
--                  start with {free_model_prefix}) x {cost_per_call} / auto_resolved
WITH
    e AS (
        SELECT *
        FROM analytics.tenant_events(
            tenant = {tenant:String},
            since = {since:DateTime64(3, 'UTC')},
            until = {until:DateTime64(3, 'UTC')})
    ),
    per_conversation AS (
        SELECT
            conversation_id,
            countIf(event_type = 'MessageReceived') AS n_messages,
            countIf(event_type = 'DecisionMade' AND action = 'reply') AS n_replies,
            countIf(event_type = 'DecisionMade' AND action = 'clarify') AS n_clarifications,
            countIf(
                event_type = 'CaseEscalated' OR (event_type = 'DecisionMade' AND action = 'escalate')
            ) > 0 AS is_escalated,
            countIf(event_type = 'ConversationClosed' AND resolved = false) > 0 AS is_unresolved,
            NOT is_escalated AND n_replies > 0 AND NOT is_unresolved AS is_auto_resolved
        FROM e
        GROUP BY conversation_id
        HAVING n_messages > 0
    ),
    conversations AS (
        SELECT
            count() AS conversations,
            countIf(is_escalated) AS escalated,
            countIf(is_auto_resolved) AS auto_resolved,
            countIf(is_auto_resolved AND n_clarifications <= {max_clarifications:UInt32}) AS fcr
        FROM per_conversation
    ),
    counts AS (
        SELECT
            countIf(event_type = 'MessageReceived') AS messages,
            countIf(event_type = 'DecisionMade') AS decisions,
            countIf(
                event_type = 'DecisionMade' AND NOT startsWith(model_name, {primary_model_prefix:String})
            ) AS fallbacks,
            countIf(
                event_type = 'MessageEnriched' AND NOT startsWith(model_name, {free_model_prefix:String})
            ) AS paid_calls,
            countIf(event_type = 'FeedbackReceived') AS ratings,
            countIf(event_type = 'FeedbackReceived' AND rating >= 4) AS satisfied,
            avgIf(rating, event_type = 'FeedbackReceived') AS avg_rating
        FROM e
    ),
    -- Each message's first MessageReceived and first DecisionMade by record time, over
    -- all of its events (the act stage decides again on an action's result, later, and
    -- that second decision may be the only one in the range): a sample when both
    -- occurred in the range.
    latency AS (
        SELECT count() AS samples, quantilesExact(0.5, 0.9, 0.99)(ms) AS q
        FROM (
            SELECT
                minIf((record_time, occurred_at), event_type = 'MessageReceived') AS received,
                minIf((record_time, occurred_at), event_type = 'DecisionMade') AS decided,
                toUnixTimestamp64Milli(decided.1) - toUnixTimestamp64Milli(received.1) AS ms
            FROM analytics.tenant_events(
                tenant = {tenant:String},
                since = '1970-01-01 00:00:00.000',
                until = '2299-12-31 23:59:59.999')
            WHERE event_type IN ('MessageReceived', 'DecisionMade') AND message_id != ''
              AND conversation_id IN (SELECT conversation_id FROM e WHERE event_type = 'MessageReceived')
            GROUP BY conversation_id, message_id
            HAVING countIf(event_type = 'MessageReceived') > 0 AND countIf(event_type = 'DecisionMade') > 0
               AND received.2 >= {since:DateTime64(3, 'UTC')} AND received.2 < {until:DateTime64(3, 'UTC')}
               AND decided.2 >= {since:DateTime64(3, 'UTC')} AND decided.2 < {until:DateTime64(3, 'UTC')}
        )
    )
-- The summary columns: rollups.sql's summary ends with this SELECT too (sql.py).
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
FROM conversations CROSS JOIN counts CROSS JOIN latency;

-- name: decisions
-- DecisionMade per action.
SELECT action, count() AS decisions
FROM analytics.tenant_events(
    tenant = {tenant:String},
    since = {since:DateTime64(3, 'UTC')},
    until = {until:DateTime64(3, 'UTC')})
WHERE event_type = 'DecisionMade'
GROUP BY action
ORDER BY decisions DESC, action;

-- name: escalation_reasons
-- CaseEscalated per reason and case priority.
SELECT reason, priority, count() AS cases
FROM analytics.tenant_events(
    tenant = {tenant:String},
    since = {since:DateTime64(3, 'UTC')},
    until = {until:DateTime64(3, 'UTC')})
WHERE event_type = 'CaseEscalated'
GROUP BY reason, priority
ORDER BY cases DESC, reason, priority;

-- name: intent_mix
-- Top intent of each enriched message ('(none)' when the model found none).
SELECT
    if(intent = '', '(none)', intent) AS top_intent,
    count() AS messages,
    messages / sum(messages) OVER () AS share
FROM analytics.tenant_events(
    tenant = {tenant:String},
    since = {since:DateTime64(3, 'UTC')},
    until = {until:DateTime64(3, 'UTC')})
WHERE event_type = 'MessageEnriched'
GROUP BY top_intent
ORDER BY messages DESC, top_intent;

-- name: sentiment_hourly
-- Sentiment of enriched messages per hour (UTC).
SELECT
    toStartOfHour(occurred_at) AS hour,
    count() AS messages,
    avg(frustration) AS avg_frustration,
    avg(valence) AS avg_valence,
    countIf(sentiment_label = 'negative') AS negative,
    countIf(sentiment_label = 'neutral') AS neutral,
    countIf(sentiment_label = 'positive') AS positive
FROM analytics.tenant_events(
    tenant = {tenant:String},
    since = {since:DateTime64(3, 'UTC')},
    until = {until:DateTime64(3, 'UTC')})
WHERE event_type = 'MessageEnriched'
GROUP BY hour
ORDER BY hour;

-- name: channels
-- MessageReceived per channel.
SELECT channel, count() AS messages
FROM analytics.tenant_events(
    tenant = {tenant:String},
    since = {since:DateTime64(3, 'UTC')},
    until = {until:DateTime64(3, 'UTC')})
WHERE event_type = 'MessageReceived'
GROUP BY channel
ORDER BY messages DESC, channel;
