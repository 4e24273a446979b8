"""Section 3 of bench/drift_detection.py: Evidently's DataDriftPreset over tumbling windows of the
covariate replay (delay at window granularity, false alarms per window, seconds per report)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.drift_streams import replay
from feature_repo.names import CATEGORICAL_FEATURES, NUMERIC_FEATURES


def bench_evidently(at: int, window: int, windows: int, reference: int) -> dict[str, Any]:
    started = time.perf_counter()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    imported = time.perf_counter() - started
    stream = replay(reference + window * windows, 0, "covariate", at)
    frame = pd.DataFrame([r for r, _ in stream])
    definition = DataDefinition(
        numerical_columns=list(NUMERIC_FEATURES), categorical_columns=list(CATEGORICAL_FEATURES)
    )
    ref = Dataset.from_pandas(frame.iloc[:reference], data_definition=definition)
    rows: list[dict[str, Any]] = []
    seconds: list[float] = []
    for w in range(windows):
        start = reference + w * window
        cur = Dataset.from_pandas(frame.iloc[start : start + window], data_definition=definition)
        t = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
        seconds.append(time.perf_counter() - t)
        drifted, share = _evidently_drift(snapshot.dict())
        rows.append({"start": start, "end": start + window, "drifted": drifted, "dataset_drift_share": share})
    first = next((r for r in rows if r["start"] >= at - window + 1 and "credit_amount" in r["drifted"]), None)
    before = [r for r in rows if r["end"] <= at]
    return {
        "reference_rows": reference,
        "window_rows": window,
        "drift_at": at,
        "import_s": round(imported, 1),
        "median_s_per_report": round(statistics.median(seconds), 3),
        "cost_us_per_event": round(statistics.median(seconds) / window * 1e6, 1),
        "credit_amount_delay_rows": first["end"] - at if first else None,
        "stationary_windows": len(before),
        "stationary_windows_with_a_drifted_column": sum(1 for r in before if r["drifted"]),
        "stationary_column_alarms": sum(len(r["drifted"]) for r in before),
        "windows": rows,
    }


def _evidently_drift(report: dict[str, Any]) -> tuple[list[str], float]:
    drifted, share = [], 0.0
    for metric in report["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            value, threshold = float(metric["value"]), float(config["threshold"])
            p_value = "p_value" in config["method"]
            if (value < threshold) if p_value else (value >= threshold):
                drifted.append(config["column"])
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    return drifted, share
