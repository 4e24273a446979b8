"""Performance estimates to ops: the gauges of every estimator snapshot, and an alarm when a flag rises.

The flags are `drop_detected` (the estimated accuracy fell past the limit, clear of its uncertainty)
and `estimator_suspect` (the estimate kept missing the labels: its assumptions broke). Each rises at
most once per model version: it is counted in `drift_alarms_total{kind="performance"}` and logged as
a warning. A drop is also published as a DriftDetected of kind "performance" (`drop_event`): it does
not retrain at once, training's policy waits for the labels since its change point. A suspect
estimator is for ops only: the labels that showed it also reach the concept monitor.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from contracts.events import DriftDetected, DriftDetectedPayload
from services.drift.metrics import ALARMS, ESTIMATE_FLAGS, PERFORMANCE

log = logging.getLogger(__name__)

DETECTORS = {"drop_detected": "CBPE", "estimator_suspect": "CBPE-vs-labels"}  # flag -> alarm's detector


class EstimateAlarms:
    """Shows every snapshot on the gauges, and raises the flags that rose (`snapshot["rose"]`, latched
    per version by the estimator and saved with the watch, so a restart does not raise them again)."""

    def show(self, snapshots: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[str, str, str]]:
        """Sets the gauges; counts and logs each flag that rose; returns them as (model, version, flag)."""
        show_estimates(snapshots)
        rose = []
        for (model, version), snap in snapshots.items():
            for flag in snap.get("rose", ()):
                rose.append((model, version, flag))
                if flag != "drop_detected":  # a drop is counted with the drift events, when published
                    ALARMS.labels("performance", DETECTORS[flag]).inc()
                log.warning(
                    "performance estimate: %s for %s v%s (%s)",
                    flag, model, version, evidence(snap),
                    extra={"model_version": version, "flag": flag},
                )  # fmt: skip
        return rose


def drop_event(model: str, version: str, snap: dict[str, Any], producer: str, drop_z: float) -> DriftDetected:
    """The DriftDetected (kind "performance") of an estimated accuracy drop: training's policy decides
    what follows (by default it waits for the labels since the window's start, then retrains)."""
    estimate = snap["estimate"]
    start, end = snap["window_start"], snap["window_end"]
    now = datetime.now(UTC)
    payload = DriftDetectedPayload(
        kind="performance",
        detector="CBPE",
        statistic=snap["accuracy_drop"] / snap["accuracy_drop_se"] if snap["accuracy_drop_se"] else 0.0,
        threshold=drop_z,
        window_start=datetime.fromtimestamp(start, UTC) if start is not None else now,
        window_end=datetime.fromtimestamp(end, UTC) if end is not None else now,
        window_size=int(estimate["rows"]),
        model_name=model,
        model_version=version,
        meaning=(
            f"Accuracy estimated from calibrated scores, before any label (CBPE): {evidence(snap)}."
            f" The drop is past the limit and {drop_z:g} standard errors clear of zero; the labels will tell."
        )[:500],
    )
    return DriftDetected.create(payload, producer=producer)


def evidence(snap: dict[str, Any]) -> str:
    estimate, reference, realised = snap["estimate"] or {}, snap["reference"] or {}, snap["realised"] or {}
    parts = [
        f"estimated accuracy {estimate.get('accuracy', float('nan')):.3f}",
        f"reference {reference.get('accuracy', float('nan')):.3f}",
    ]
    if realised:
        accuracy, labelled, z = realised["realised_accuracy"], realised["labelled"], realised["z"]
        parts.append(f"the last window with labels: realised {accuracy:.3f} on {labelled}, z {z:+.1f}")
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
