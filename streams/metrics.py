"""Prometheus metrics shared by the worker, the connector and the log driver."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter(
    "casestream_events_in_total", "Records consumed, by topic and stage.", ["topic", "stage"]
)
EVENTS_OUT = Counter("casestream_events_out_total", "Events produced, by topic.", ["topic"])
DEAD_LETTERS = Counter(
    "casestream_dead_letters_total", "Records sent to the dead-letter topic.", ["stage", "error"]
)
DECISIONS = Counter(
    "casestream_decisions_total", "Decisions by action and reason.", ["action", "reason"]
)
FALLBACKS = Counter(
    "casestream_fallbacks_total",
    "Times a component passed over a link of its fallback chain, and why.",
    ["component", "link", "to", "reason"],
)
PROCESSING = Histogram(
    "casestream_processing_seconds",
    "Time to process one record in a stage (decode to outputs queued).",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
END_TO_END = Histogram(
    "casestream_end_to_end_seconds",
    "MessageReceived record time to decision produced.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
CONSUMER_LAG = Gauge(
    "casestream_consumer_lag",
    "High watermark minus next offset to process.",
    ["topic", "partition"],
)
HTTP_REQUESTS = Counter(
    "casestream_http_requests_total", "Connector requests by route and status.", ["route", "status"]
)
REPLIES_DELIVERED = Counter(
    "casestream_replies_delivered_total", "Replies handed to a channel, by status.", ["status"]
)
CONSUMER_SKIPS = Counter(
    "casestream_consumer_skips_total",
    "Fetched records not delivered in order: 'stale' (fetched before their partition was"
    " sought; dropped, fetched again), 'gap' (an offset jump, which Faust counts as"
    " acknowledged) or 'behind' (below the partition's read offset, which Faust drops).",
    ["topic", "kind"],
)
