"""The drift service's own Prometheus metrics (the kit counts events consumed and published)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ALARMS = Counter(
    "drift_alarms_total",
    "Drift alarms raised (one DriftDetected each), by kind (data, prediction, concept) and detector",
    ["kind", "detector"],
)
JOIN_PENDING = Gauge(
    "drift_join_pending",
    "Predictions waiting for their label, and labels waiting for their prediction, in the label join",
    ["side"],
)
ONLINE_QUALITY = Gauge(
    "drift_model_online_quality",
    "Quality of the served model on its last labelled predictions (the label join), per version: "
    "accuracy, auc, brier, calibration_error, and labelled (how many predictions it stands on)",
    ["model", "version", "measure"],
)
