"""Ingest's own Prometheus metrics. The invariant, per process: every raw record handled ends as one
outcome, so `ingest_raw_records_total == sum(ingest_outcomes_total)` once a batch is published."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RAW_RECORDS = Counter("ingest_raw_records_total", "Raw records taken from Kafka or HTTP", ["source"])
OUTCOMES = Counter(
    "ingest_outcomes_total", "Outcome events published, by outcome and rejection code", ["outcome", "code"]
)
PII_FOUND = Counter(
    "ingest_pii_scrubbed_total", "PII values scrubbed, by entity type and where", ["entity", "where"]
)
BATCH_SECONDS = Histogram(
    "ingest_batch_seconds",
    "Time to validate, scrub and publish one batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PUBLISH_RETRIES = Counter("ingest_publish_retries_total", "Failed attempts to publish a batch of outcomes")
