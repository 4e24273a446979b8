"""The performance-estimation benchmark's pure core on tiny synthetic streams whose truth is drawn
from the probabilities themselves (calibrated by construction)."""

from __future__ import annotations

import numpy as np

from bench.performance_estimation_core import bench_stream, errors, stream, summarise, windows


def calibrated(rng: np.random.Generator, low: float, high: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    p = rng.uniform(low, high, n)
    return p, rng.random(n) < p


def test_on_a_calibrated_stream_the_error_is_the_labels_own_noise() -> None:
    rng = np.random.default_rng(1)
    p, truth = calibrated(rng, 0.02, 0.98, 5000)
    found = errors(windows(stream("stationary", p, truth, None), 500), None, 500)["before"]
    assert found["accuracy_mae"] < 1.5 * found["accuracy_noise_floor"] < 0.03
    assert abs(found["accuracy_bias"]) < 0.01 and found["auc_mae"] < 0.03


def test_a_covariate_shift_is_estimated_and_flagged_a_concept_switch_is_not() -> None:
    rng = np.random.default_rng(2)
    p0, t0 = calibrated(rng, 0.02, 0.98, 2500)
    p1, t1 = calibrated(rng, 0.35, 0.65, 2500)  # inputs near the boundary: accuracy 0.75 -> 0.55
    shift = bench_stream(stream("shift", np.r_[p0, p1], np.r_[t0, t1], 2500), 500)
    assert shift["errors"]["after"]["real_accuracy"] < 0.6
    assert shift["errors"]["after"]["accuracy_mae"] < 0.04
    assert shift["rows_to_drop_detected"] == 500  # the first full window after the change
    assert shift["rows_to_suspect"][0] is None  # the estimator's assumption holds

    p2, t2 = calibrated(rng, 0.02, 0.98, 2500)
    switch = bench_stream(stream("switch", np.r_[p0, p2], np.r_[t0, ~t2], 2500), 500)
    assert switch["rows_to_drop_detected"] is None  # the estimate cannot see it
    assert switch["errors"]["after"]["accuracy_mae"] > 0.4
    assert switch["rows_to_concept_alarm"][1000] == switch["rows_to_concept_alarm"][0] + 1000
    assert switch["rows_to_suspect"][0] is not None and switch["rows_to_suspect"][0] <= 1500
    summary = summarise({"switch": [switch]})["switch"]
    assert summary["drop_detected_missed"] == 1 and summary["missed_suspect"][0] == 0
