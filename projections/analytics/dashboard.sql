-- Queries of the dashboard (`dashboard.py`), one per `-- name:` block, same conventions as
-- kpis.sql. The sentiment trend is kpis.sql's `sentiment_hourly`, shared with the report.

-- name: tenants
-- Every tenant with at least one stored event (the page's tenant picker).
SELECT DISTINCT tenant_id AS tenant
FROM analytics.events
ORDER BY tenant;

-- name: messages_hourly
-- MessageReceived per hour (UTC); hours without messages between the first and the
-- last one are filled with 0 so the chart has no holes.
SELECT toStartOfHour(occurred_at) AS hour, count() AS messages
FROM analytics.tenant_events(
    tenant = {tenant:String},
    since = {since:DateTime64(3, 'UTC')},
    until = {until:DateTime64(3, 'UTC')})
WHERE event_type = 'MessageReceived'
GROUP BY hour
ORDER BY hour WITH FILL STEP toIntervalHour(1);
