"""Serving's own Prometheus metrics (beside the kit's HTTP, event and readiness metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREDICTION_SECONDS = Histogram(
    "serving_prediction_seconds",
    "Time to serve one /predict request inside the handler (feature read + scoring)",
    ["source"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
PREDICTIONS = Counter(
    "serving_predictions_total", "Predictions made, by model version and role", ["model_version", "role"]
)
MODEL_LOADS = Counter("serving_model_loads_total", "Model loads, by alias and outcome", ["alias", "outcome"])
MODEL_VERSION = Gauge("serving_model_version", "Version currently served under an alias", ["alias"])
MODEL_LOAD_SECONDS = Histogram(
    "serving_model_load_seconds", "Time to load a model version", buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60)
)
OUTBOX_DEPTH = Gauge("serving_event_queue_depth", "Prediction events waiting to be published")
OUTBOX_DROPPED = Counter(
    "serving_events_dropped_total", "Prediction events not published, by reason", ["reason"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "serving_event_publish_failures_total", "Failed attempts to publish a batch of prediction events"
)
LABELS = Counter("serving_labels_total", "Labels accepted on POST /labels", ["label"])
