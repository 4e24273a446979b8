"""The features service's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECORDS = Counter(
    "features_records_total",
    "Clean records taken from Kafka, by outcome (pushed, duplicate, other_dataset, dead_lettered)",
    ["outcome"],
)
PUSH_SECONDS = Histogram(
    "features_push_seconds",
    "Time of one Feast push (online and offline) of a batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
