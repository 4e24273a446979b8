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
