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
PERFORMANCE = Gauge(
    "drift_model_performance",
    "Performance of the served model per version, estimated before labels (source=estimated: the last "
    "full CBPE window; reference: the version's first 4, pooled) and, on the last window with enough labels, "
    "realised against the estimate for the same predictions (source=realised, estimated_on_labelled, "
    "gap = realised - estimated, z = the gap in standard deviations). Measures: accuracy, auc, cost, "
    "accuracy_se, labelled",
    ["model", "version", "source", "measure"],
)
ESTIMATE_FLAGS = Gauge(
    "drift_model_estimate_flag",
    "1 when raised: drop_detected (estimated accuracy fell past the limit, with its uncertainty), "
    "estimator_suspect (the estimate kept missing the labels: its assumptions broke), uncalibrated "
    "(predictions came without a calibrated probability; the raw score was used)",
    ["model", "version", "flag"],
)
