"""Prometheus metrics shared by every service (each service adds its own beside these)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "mlops_events_consumed_total", "Messages taken from Kafka and handled", ["service", "topic", "outcome"]
)
EVENTS_PUBLISHED = Counter("mlops_events_published_total", "Events published to Kafka", ["service", "topic"])
EVENTS_WITHHELD = Counter(
    "mlops_events_withheld_total",
    "Events a replay process (`mlops replay` without --publish) would have published, not sent",
    ["service", "topic"],
)
DEAD_LETTERS = Counter("mlops_dead_letters_total", "Messages dead-lettered", ["service", "topic", "code"])
HANDLER_SECONDS = Histogram(
    "mlops_handler_seconds",
    "Time spent handling one message",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HTTP_SECONDS = Histogram(
    "mlops_http_request_seconds",
    "HTTP request latency",
    ["service", "route", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEPENDENCY_UNAVAILABLE = Gauge(
    "mlops_dependency_unavailable",
    "1 while a dependency (database, redis, http, kafka) does not answer and consumers wait for it",
    ["service", "dependency"],
)
SERVICE_UP = Gauge("mlops_service_ready", "1 when the service is ready", ["service"])
CONSUMER_LAG = Gauge(
    "mlops_consumer_lag",
    "Messages behind the end of the log, per partition assigned to this process (high watermark minus "
    "the consumer's position; refreshed when /metrics is scraped)",
    ["service", "group", "topic", "partition"],
)
