"""The audit service's own Prometheus metrics (beside servicekit's shared ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

APPENDED = Counter("mlops_audit_events_appended_total", "Rows appended to the audit chain", ["topic"])
DUPLICATES = Counter(
    "mlops_audit_duplicates_skipped_total", "Redelivered messages recognised and skipped", ["topic"]
)
UNDECODABLE = Counter(
    "mlops_audit_undecodable_total", "Messages recorded by digest because they were not envelopes", ["topic"]
)
CHAIN_LENGTH = Gauge("mlops_audit_chain_length", "Rows in the audit hash chain")
CHECKPOINTS = Counter("mlops_audit_checkpoints_published_total", "Chain heads published to Kafka")
BATCH_SECONDS = Histogram(
    "mlops_audit_batch_append_seconds",
    "Time to parse, deduplicate, chain and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CHECKPOINT_PUBLISHER = Gauge(
    "mlops_audit_checkpoint_publisher", "1 while this instance holds the checkpoint lease, else 0"
)
