"""The training service's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LABELS = Counter(
    "training_labels_total", "LabelObserved events, by outcome (stored, duplicate, ignored)", ["outcome"]
)
RUNS = Counter("training_runs_total", "Training runs, by outcome (promoted, rejected, failed)", ["outcome"])
PHASE_SECONDS = Histogram(
    "training_phase_seconds",
    "Time of each phase of a training run (historical, fit, calibrate, log_model, gate, total)",
    ["phase"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160),
)
DRIFT_EVENTS = Counter(
    "training_drift_events_total",
    "DriftDetected events, by retraining decision (go, or the rule that refused: off, kind, cooldown...)",
    ["reason"],
)
SCHEDULED = Counter(
    "training_scheduled_total",
    "Due times of the retraining schedule, by trigger (cron, labels, age) and outcome (fired, "
    "covered: another trigger's request served it, paused: skipped)",
    ["trigger", "outcome"],
)
