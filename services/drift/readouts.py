"""What ops read about the drift watch: every detector's state (GET /detectors) and the canary's
recommendation (GET /canary). Pure: the watch is handed in."""

from __future__ import annotations

from typing import Any

from services.drift.domain.canary import Counts, recommend
from services.drift.domain.watch import DriftWatch
from services.drift.errors import NothingToCompare


def detectors(watch: DriftWatch, *, published: int, unattached: int) -> dict[str, Any]:
    """Every monitor's state, the join's, the skip counts, and the service's counters."""
    return {
        "monitors": {name: m.state() for name, m in sorted(watch.monitors.items())},
        "model_versions": dict(watch.versions),
        "join": watch.join.stats(),
        "online_quality": [
            {"model": model, "version": version, **quality.measures()}
            for (model, version), quality in watch.quality.items()
        ],
        "performance_estimates": [
            {"model": model, "version": version, **estimator.snapshot()}
            for (model, version), estimator in watch.estimators.items()
        ],
        "skipped": dict(watch.skipped),
        "published": published,
        "report_unattached": unattached,
    }


def canary_recommendation(
    watch: DriftWatch,
    model_name: str,
    canary: str | None,
    champion: str | None,
    min_labels: int,
    confidence: float,
) -> dict[str, Any]:
    """Promote, keep or roll back the canary: its accuracy against the champion's on their labelled
    predictions in the online quality windows (domain/canary.py). A recommendation only. A version
    not named is the one seen: the last canary's, and the one the champion's monitors follow."""
    canary = canary or watch.canaries.get(model_name)
    champion = champion or watch.versions.get(model_name)
    if canary is None or champion is None:
        missing = "canary" if canary is None else "champion"
        raise NothingToCompare(f"no {missing} version named, and none seen in the predictions")
    found: dict[str, Counts] = {}
    for version in (canary, champion):
        quality = watch.quality.get((model_name, version))
        found[version] = Counts(*quality.counts()) if quality else Counts(0, 0)
    advice = recommend(found[canary], found[champion], min_labels=min_labels, confidence=confidence)
    sides = {
        role: {"version": v, "labelled": found[v].labelled, "accuracy": found[v].accuracy}
        for role, v in (("canary", canary), ("champion", champion))
    }
    return {"model": model_name, **sides, "confidence": confidence, **advice.as_dict()}
