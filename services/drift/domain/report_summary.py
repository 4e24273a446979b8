"""Pure helpers of the Evidently reports: which columns can be compared, an even sample of a reference,
and the small summary read from Evidently's JSON (no Evidently import here).

>>> sample_evenly(list(range(10)), 3)
[0, 3, 6]
>>> usable_columns([{"a": 1, "b": None}], [{"a": 2, "b": "x"}], ["a", "b", "c"])
(['a'], ['b', 'c'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")
DRIFT_COUNT = "evidently:metric_v2:DriftedColumnsCount"
VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
# The model's outputs on a kept record (adapters/report_store.py), beside its features: the served
# prediction's score and class (1 = the positive decision) and the label's truth (1 = positive label).
SCORE, PREDICTED, LABEL, VERSION = "prediction_score", "predicted_class", "label", "model_version"
OUTPUTS = (SCORE, PREDICTED, LABEL)


def sample_evenly(rows: Sequence[T], k: int) -> list[T]:
    """At most `k` rows spread evenly over `rows` (in order; deterministic, no seed needed)."""
    if len(rows) <= k:
        return list(rows)
    step = len(rows) / k
    return [rows[int(i * step)] for i in range(k)]


def usable_columns(
    current: list[dict[str, Any]], reference: list[dict[str, Any]], columns: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(columns with at least one value on both sides, the others): Evidently fails on an empty column."""
    usable = [
        c
        for c in columns
        if any(r.get(c) is not None for r in current) and any(r.get(c) is not None for r in reference)
    ]
    return usable, [c for c in columns if c not in usable]


def summarize(evidently: dict[str, Any], flagged: Sequence[str] = ()) -> dict[str, Any]:
    """Drifted columns, their share and per column: score, threshold, method and the drift verdict,
    the `flagged` columns first; and the drift of the model's outputs (`OUTPUTS`), apart.

    `evidently` is `Snapshot.dict()` of a DataDriftPreset run with `include_tests=True` (the verdict of
    a column is its ValueDrift test: FAIL means drifted; without a test it is None), or the metrics
    and tests of several runs put together.
    """
    verdicts = {
        t.get("metric_config", {}).get("metric_id"): t.get("status") == "FAIL"
        for t in evidently.get("tests", [])
        if t.get("id") == "drift"
    }
    columns: dict[str, dict[str, Any]] = {}
    count: dict[str, Any] = {}
    for metric in evidently.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type") == DRIFT_COUNT:
            count = {**metric.get("value", {}), "drift_share": config.get("drift_share")}
        elif config.get("type") == VALUE_DRIFT:
            columns[config["column"]] = {
                "score": _number(metric.get("value")),
                "threshold": config.get("threshold"),
                "method": config.get("method"),
                "drifted": verdicts.get(metric.get("id")),
            }
    outputs = {c: columns.pop(c) for c in OUTPUTS if c in columns}
    columns = {**{c: columns[c] for c in flagged if c in columns}, **columns}
    drifted = sorted(c for c, v in columns.items() if v["drifted"])
    share = count.get("share", len(drifted) / len(columns) if columns else 0.0)
    drift_share = count.get("drift_share") or 0.5
    return {
        "prediction_drift": _first_tested(outputs, (SCORE, PREDICTED)),
        "target_drift": _first_tested(outputs, (LABEL,)),
        "outputs": outputs,
        "dataset_drift": bool(columns) and share >= drift_share,
        "drifted_columns": drifted,
        "drifted_count": len(drifted),
        "columns_tested": len(columns),
        "share": share,
        "drift_share": drift_share,
        "columns": columns,
    }


def _first_tested(outputs: dict[str, dict[str, Any]], names: Sequence[str]) -> bool | None:
    """The drift verdict of the first of `names` that was tested, None if none was. The predicted class
    is a function of the score: testing both would double the false alarms, so the score decides."""
    verdicts = [outputs[n]["drifted"] for n in names if n in outputs and outputs[n]["drifted"] is not None]
    return verdicts[0] if verdicts else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
