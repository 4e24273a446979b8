"""The pure core of bench/performance_estimation.py: per-window estimates against the truth, the
estimator's alarms (`drop_detected`, `estimator_suspect`) with labels fed back after a delay, the
label-based concept monitor, and the summary over seeds. Values in, values out: no data generation.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.drift.domain.estimate import (
    Costs,
    PerformanceEstimator,
    correct_probability,
    estimate,
    realised_auc,
)
from services.drift.domain.watch import WatchConfig

DELAYS = (0, 1_000, 10_000)
# Other settings of the drop rule, scored on the same window estimates: (drop_limit, drop_z, windows in
# the reference). (0.03, 3.0, 4) are PerformanceEstimator's defaults (a check: it must agree with it).
GRID = ((0.05, 3.0, 1), (0.03, 3.0, 1), (0.0, 3.0, 1), (0.02, 4.0, 1), (0.03, 3.0, 4), (0.02, 3.0, 4))


@dataclass(frozen=True)
class Stream:
    """One served model's predictions: P(positive), the decision, the truth; change at `change`."""

    name: str
    probability: np.ndarray
    decided: np.ndarray
    truth: np.ndarray
    change: int | None
    info: dict[str, Any]


def stream(name: str, p: np.ndarray, truth: np.ndarray, change: int | None, **info: Any) -> Stream:
    p = np.asarray(p, dtype=float)
    return Stream(name, p, p >= 0.5, np.asarray(truth, dtype=bool), change, info)


def windows(s: Stream, size: int) -> list[dict[str, Any]]:
    """Estimate and truth of each full window of the stream."""
    out = []
    for start in range(0, len(s.probability) - size + 1, size):
        p, d, t = (a[start : start + size] for a in (s.probability, s.decided, s.truth))
        e = estimate(p, d, Costs())
        q = correct_probability(p, d)
        out.append(
            {
                "start": start,
                "accuracy": e.accuracy,
                "se": e.accuracy_se,
                "auc": e.auc,
                "floor": float(np.sqrt((q * (1 - q)).sum()) / size * np.sqrt(2 / np.pi)),
                "real_accuracy": float((d == t).mean()),
                "real_auc": realised_auc(p, t),
            }
        )
    return out


def errors(ws: list[dict[str, Any]], change: int | None, size: int) -> dict[str, dict[str, float]]:
    """Mean absolute (and signed: estimated - realised) error of accuracy and AUC over the windows
    before / after the change."""
    parts = {
        "before": [w for w in ws if change is None or w["start"] + size <= change],
        "after": [w for w in ws if change is not None and w["start"] >= change],
    }
    out: dict[str, dict[str, float]] = {}
    for part, chosen in parts.items():
        if not chosen:
            continue
        acc = [w["accuracy"] - w["real_accuracy"] for w in chosen]
        auc = [w["auc"] - w["real_auc"] for w in chosen if w["auc"] is not None and w["real_auc"] is not None]
        out[part] = {
            "accuracy_mae": float(np.mean(np.abs(acc))),
            "accuracy_bias": float(np.mean(acc)),
            # E|realised - estimate| if the estimate were exact: the realised count's own noise
            "accuracy_noise_floor": float(np.mean([w["floor"] for w in chosen])),
            "auc_mae": float(np.mean(np.abs(auc))),
            "auc_bias": float(np.mean(auc)),
            "real_accuracy": float(np.mean([w["real_accuracy"] for w in chosen])),
            "real_auc": float(np.mean([w["real_auc"] for w in chosen if w["real_auc"] is not None])),
        }
    return out


def estimator_alarms(s: Stream, delay: int | None, size: int) -> dict[str, list[int]]:
    """Rows (1-based count) at which `drop_detected` / `estimator_suspect` were on, checked at each
    window's close and, with labels (`delay` not None), every 100 rows."""
    est = PerformanceEstimator(window_size=size)
    seqs: list[int] = []
    found: dict[str, list[int]] = {"drop_detected": [], "estimator_suspect": []}
    for t in range(len(s.probability)):
        seqs.append(est.observe(s.probability[t], bool(s.decided[t])))
        if delay is not None and t - delay >= 0:
            i = t - delay
            est.label(seqs[i], s.probability[i], bool(s.decided[i]), bool(s.truth[i]))
        if (t + 1) % size == 0 or (delay is not None and (t + 1) % 100 == 0):
            snap = est.snapshot()
            for key, rows in found.items():
                if snap[key]:
                    rows.append(t + 1)
    return found


def concept_alarms(s: Stream) -> list[int]:
    """Labels (1-based count) at which the service's concept monitor raised, fed every error."""
    monitor = WatchConfig((), ()).concept_monitor()
    return [
        i + 1 for i, wrong in enumerate(s.decided != s.truth) if monitor.update(float(wrong)).drift_detected
    ]


def first_after(rows: list[int], change: int) -> int | None:
    after = [r - change for r in rows if r > change]
    return after[0] if after else None


def grid_label(limit: float, z: float, reference: int) -> str:
    return f"limit {limit}, z {z}, reference {reference} window{'s' if reference > 1 else ''}"


def grid_alarms(ws: list[dict[str, Any]], limit: float, z: float, reference: int = 1) -> list[int]:
    """Starts of the windows flagged by snapshot()'s rule (drop > limit and > z standard errors),
    the reference being the mean of the first `reference` windows (1: the estimator's own rule)."""
    first = ws[:reference]
    accuracy = float(np.mean([w["accuracy"] for w in first]))
    se = float(np.sqrt(sum(w["se"] ** 2 for w in first)) / len(first))
    return [
        w["start"]
        for w in ws[reference:]
        if accuracy - w["accuracy"] > max(limit, z * float(np.hypot(se, w["se"])))
    ]


def bench_stream(s: Stream, size: int) -> dict[str, Any]:
    ws = windows(s, size)
    change = s.change or 0
    labels = concept_alarms(s)
    out: dict[str, Any] = {"errors": errors(ws, s.change, size), "info": s.info, "windows": ws}
    unlabelled = estimator_alarms(s, None, size)
    out["drop_detected_before_change"] = sum(1 for r in unlabelled["drop_detected"] if r <= change)
    out["rows_to_drop_detected"] = first_after(unlabelled["drop_detected"], change)
    out["concept_alarms_before_change"] = sum(1 for r in labels if r <= change)
    concept = first_after(labels, change)
    out["rows_to_concept_alarm"] = {d: (None if concept is None else concept + d) for d in DELAYS}
    out["rows_to_suspect"] = {}
    for d in DELAYS:
        suspect = estimator_alarms(s, d, size)["estimator_suspect"]
        out["rows_to_suspect"][d] = first_after(suspect, change)
        out.setdefault("suspect_before_change", {})[d] = sum(1 for r in suspect if r <= change)
    out["grid_rows_to_alarm"] = {
        grid_label(*g): first_after([a + size for a in grid_alarms(ws, *g)], change) for g in GRID
    }
    return out


def median_or_none(values: list[Any]) -> Any:
    """Median with misses (None) counted as larger than any delay; None when most missed."""
    big = [float("inf") if v is None else v for v in values]
    m = statistics.median(big) if big else None
    return None if m is None or m == float("inf") else m


def summarise(per_seed: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case, runs in per_seed.items():
        row: dict[str, Any] = {}
        for part in ("before", "after"):
            parts = [r["errors"][part] for r in runs if part in r["errors"]]
            if parts:
                row[part] = {k: round(statistics.median(p[k] for p in parts), 4) for k in parts[0]}
        row["realised_shift_sd"] = runs[0]["info"].get("realised_shift_sd")
        row["rows_to_drop_detected"] = median_or_none([r["rows_to_drop_detected"] for r in runs])
        row["drop_detected_missed"] = sum(1 for r in runs if r["rows_to_drop_detected"] is None)
        row["drop_detected_before_change"] = sum(r["drop_detected_before_change"] for r in runs)
        row["concept_alarms_before_change"] = sum(r["concept_alarms_before_change"] for r in runs)
        for key in ("rows_to_concept_alarm", "rows_to_suspect"):
            row[key] = {d: median_or_none([r[key][d] for r in runs]) for d in DELAYS}
            row[key.replace("rows_to", "missed")] = {
                d: sum(1 for r in runs if r[key][d] is None) for d in DELAYS
            }
        row["suspect_before_change"] = {d: sum(r["suspect_before_change"][d] for r in runs) for d in DELAYS}
        row["grid_rows_to_alarm"] = {
            g: median_or_none([r["grid_rows_to_alarm"][g] for r in runs])
            for g in runs[0]["grid_rows_to_alarm"]
        }
        row["seeds"] = len(runs)
        out[case] = row
    return out
