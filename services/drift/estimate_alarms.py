"""Performance estimates to ops: the gauges of every estimator snapshot, and an alarm when a flag rises.

The flags are `drop_detected` (the estimated accuracy fell past the limit, clear of its uncertainty)
and `estimator_suspect` (the estimate kept missing the labels: its assumptions broke). Each rise is
counted once in `drift_alarms_total{kind="performance_estimate"}` and logged as a warning; a flag
that falls and rises again counts again. Neither retrains: there is nothing to learn from yet.
"""

from __future__ import annotations

import logging
from typing import Any

from services.drift.metrics import ALARMS, ESTIMATE_FLAGS, PERFORMANCE

log = logging.getLogger(__name__)

DETECTORS = {"drop_detected": "CBPE", "estimator_suspect": "CBPE-vs-labels"}


class EstimateAlarms:
    def __init__(self) -> None:
        self.raised: set[tuple[str, str, str]] = set()  # (model, version, flag) up now

    def show(self, snapshots: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[str, str, str]]:
        """Sets the gauges; returns the flags that rose with these snapshots."""
        show_estimates(snapshots)
        rose = []
        for (model, version), snap in snapshots.items():
            for flag, detector in DETECTORS.items():
                key = (model, version, flag)
                if snap[flag] and key not in self.raised:
                    self.raised.add(key)
                    rose.append(key)
                    ALARMS.labels("performance_estimate", detector).inc()
                    log.warning(
                        "performance estimate: %s for %s v%s (%s)",
                        flag, model, version, evidence(snap),
                        extra={"model_version": version, "flag": flag},
                    )  # fmt: skip
                elif not snap[flag]:
                    self.raised.discard(key)
        return rose


def evidence(snap: dict[str, Any]) -> str:
    estimate, reference, realised = snap["estimate"] or {}, snap["reference"] or {}, snap["realised"] or {}
    parts = [
        f"estimated accuracy {estimate.get('accuracy', float('nan')):.3f}",
        f"reference {reference.get('accuracy', float('nan')):.3f}",
    ]
    if realised:
        accuracy, labelled, z = realised["realised_accuracy"], realised["labelled"], realised["z"]
        parts.append(f"realised {accuracy:.3f} on {labelled} labels, z {z:.1f}")
    return ", ".join(parts)


def show_estimates(snapshots: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Sets the performance gauges from estimator snapshots (domain/estimate.py `snapshot`)."""
    for (model, version), snap in snapshots.items():
        for source, measures in (("estimated", snap["estimate"]), ("reference", snap["reference"])):
            for measure in ("accuracy", "auc", "cost", "accuracy_se"):
                if measures and measures.get(measure) is not None:
                    PERFORMANCE.labels(model, version, source, measure).set(measures[measure])
        realised = snap["realised"]
        if realised:
            pairs = {
                ("realised", "accuracy"): realised["realised_accuracy"],
                ("realised", "auc"): realised["realised_auc"],
                ("realised", "cost"): realised["realised_cost"],
                ("realised", "labelled"): realised["labelled"],
                ("estimated_on_labelled", "accuracy"): realised["estimated_accuracy"],
                ("estimated_on_labelled", "auc"): realised["estimated_auc"],
                ("estimated_on_labelled", "cost"): realised["estimated_cost"],
                ("gap", "accuracy"): realised["gap"],
                ("gap", "z"): realised["z"],
            }
            for (source, measure), value in pairs.items():
                if value is not None:
                    PERFORMANCE.labels(model, version, source, measure).set(value)
        flags = {
            "drop_detected": snap["drop_detected"],
            "estimator_suspect": snap["estimator_suspect"],
            "uncalibrated": not snap["calibrated"],
        }
        for flag, raised in flags.items():
            ESTIMATE_FLAGS.labels(model, version, flag).set(1.0 if raised else 0.0)
