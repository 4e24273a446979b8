"""Performance estimated before labels (issue 19, items 1 and 2): CBPE's expected accuracy, AUC and
cost match what the labels later show on a calibrated stream; a covariate shift that pushes
applicants towards the decision boundary is flagged with no label at all, a stationary stream is
not; a concept drift (invisible to the estimate) is caught when the labels keep contradicting it;
and through the drift service the estimate, the realised value and their gap reach /detectors and
/metrics and survive a restart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from mlops_client.models import Detectors
from services.drift.domain.estimate import (
    Costs,
    PerformanceEstimator,
    compare,
    estimate,
    expected_auc,
    realised_auc,
)
from tests.unit.test_drift_service import Harness, label, made, raws


def calibrated_stream(n: int, rng: np.random.Generator, centre: float = 0.0, flip: bool = False):
    """P(bad) = sigmoid(2x - 1) with x ~ N(centre, 1): the probability IS the truth's (calibrated).
    `flip` swaps the truth (a concept change the scores cannot see)."""
    x = rng.normal(centre, 1.0, n)
    p = 1 / (1 + np.exp(-(2 * x - 1)))
    truth = rng.random(n) < p
    return p, p >= 0.5, (~truth if flip else truth)


def test_expected_auc_of_plain_cases() -> None:
    assert expected_auc(np.array([1.0, 0.0])) == pytest.approx(1.0)
    assert expected_auc(np.full(10, 0.3)) == pytest.approx(0.5)  # one tie: no ranking at all
    assert expected_auc(np.array([0.0, 0.0])) is None  # one class expected only
    assert realised_auc(np.array([0.9, 0.1]), np.array([True, False])) == 1.0


def test_on_a_calibrated_stream_the_estimate_matches_what_the_labels_show() -> None:
    rng = np.random.default_rng(1)
    errors = {"accuracy": [], "auc": [], "cost": []}
    for _ in range(20):
        p, declined, truth = calibrated_stream(2000, rng)
        c = compare(p, declined, truth, Costs())
        errors["accuracy"].append(abs(c.gap))
        errors["auc"].append(abs(c.realised_auc - c.estimated_auc))
        errors["cost"].append(abs(c.realised_cost - c.estimated_cost))
        assert abs(c.z) < 4  # the gap is sampling noise, in the estimator's own units
    assert np.median(errors["accuracy"]) < 0.01
    assert np.median(errors["auc"]) < 0.015
    assert np.median(errors["cost"]) < 0.03


def test_uncalibrated_scores_miss_and_the_labels_say_so() -> None:
    rng = np.random.default_rng(2)
    p, declined, truth = calibrated_stream(2000, rng)
    squashed = 0.5 + (p - 0.5) * 0.3  # ranks kept, probabilities pulled to 0.5: too unsure
    c = compare(squashed, declined, truth, Costs())
    assert c.gap > 0.1 and c.z > 5  # the model is right far more often than the estimate expects


def feed(estimator: PerformanceEstimator, stream, label_delay: int | None) -> list[tuple[int, dict]]:
    """Predictions in order; each label `label_delay` rows later (None: never). A snapshot (with its
    row) every 50 rows, as the service takes one per batch."""
    p, declined, truth = stream
    windows: list[int] = []
    snapshots = []
    for i in range(len(p)):
        windows.append(estimator.observe(p[i], bool(declined[i])))
        if label_delay is not None and i - label_delay >= 0:
            j = i - label_delay
            estimator.label(windows[j], p[j], bool(declined[j]), bool(truth[j]))
        if i % 50 == 49:
            snapshots.append((i, estimator.snapshot()))
    return snapshots


def stack(*streams):
    return tuple(np.concatenate(columns) for columns in zip(*streams, strict=True))


def test_a_shift_towards_the_boundary_is_flagged_before_any_label() -> None:
    rng = np.random.default_rng(3)
    # Before: applicants far from the boundary (centre -1.5: mostly sure approvals); after the change
    # at row 2000 (the reference: the first 4 windows) they crowd at the boundary (centre 0.5), where
    # any decision is a coin flip.
    before, after = calibrated_stream(2000, rng, centre=-1.5), calibrated_stream(2000, rng, centre=0.5)
    truth_before = np.mean(before[1] == before[2])
    truth_after = np.mean(after[1] == after[2])
    assert truth_before - truth_after > 0.1  # the world really got harder for the model
    estimator = PerformanceEstimator(window_size=500)
    snapshots = feed(estimator, stack(before, after), label_delay=None)  # no label ever comes
    flagged = [i for i, s in snapshots if s["drop_detected"]]
    assert flagged and not [i for i in flagged if i < 2000]  # nothing before the change
    assert flagged[0] < 2000 + 500  # at the first full window after it
    snap = snapshots[-1][1]
    assert snap["realised"] is None and snap["estimate"]["accuracy"] == pytest.approx(truth_after, abs=0.05)
    assert snap["accuracy_drop"] > 3 * snap["accuracy_drop_se"]


def test_a_stationary_stream_raises_nothing() -> None:
    rng = np.random.default_rng(4)
    estimator = PerformanceEstimator(window_size=500)
    snapshots = feed(estimator, calibrated_stream(10_000, rng), label_delay=300)
    assert not any(s["drop_detected"] or s["estimator_suspect"] for _, s in snapshots)
    assert snapshots[-1][1]["realised"]["labelled"] >= 100  # judged windows were there


def test_a_concept_change_is_invisible_to_the_estimate_but_the_labels_make_it_suspect() -> None:
    rng = np.random.default_rng(5)
    stream = stack(calibrated_stream(1500, rng), calibrated_stream(2500, rng, flip=True))
    estimator = PerformanceEstimator(window_size=500)
    snapshots = feed(estimator, stream, label_delay=200)
    assert not any(s["drop_detected"] for _, s in snapshots)  # the scores look as before
    suspect = [i for i, s in snapshots if s["estimator_suspect"]]
    assert suspect and suspect[0] > 1500  # only after the change, once its windows are labelled
    assert snapshots[-1][1]["realised"]["gap"] < -0.3  # realised far below the estimate


def test_windows_are_bounded_and_a_label_for_a_forgotten_window_is_refused() -> None:
    estimator = PerformanceEstimator(window_size=50, windows_kept=3)
    first = estimator.observe(0.2, False)
    for _ in range(400):
        estimator.observe(0.2, False)
    assert len(estimator.windows) == 3
    assert estimator.label(first, 0.2, False, False) is False
    assert estimator.label(None, 0.2, False, False) is False
    assert estimator.reference is not None and estimator.reference.accuracy == pytest.approx(0.8)


def test_cost_counts_approved_defaults_five_times_and_declined_payers_once() -> None:
    declined = np.array([False, False, True, True])
    truth = np.array([True, False, False, True])  # one approved default, one declined payer
    p = np.array([0.5, 0.0, 0.0, 1.0])
    assert compare(p, declined, truth, Costs()).realised_cost == pytest.approx((5 + 1) / 4)
    assert estimate(p, declined, Costs()).cost == pytest.approx((5 * 0.5 + 1 * 1.0) / 4)


def gauge(source: str, measure: str, version: str = "7") -> float | None:
    labels = {"model": "credit", "version": version, "source": source, "measure": measure}
    return REGISTRY.get_sample_value("drift_model_performance", labels)


def flag(name: str, version: str = "7") -> float | None:
    labels = {"model": "credit", "version": version, "flag": name}
    return REGISTRY.get_sample_value("drift_model_estimate_flag", labels)


async def test_through_the_service_estimate_realised_and_gap_reach_detectors_and_metrics(
    tmp_path: Path,
) -> None:
    """PredictionMade events with a calibrated probability, then their labels: /detectors and
    /metrics carry the estimate, the realised value and the gap; a restart keeps the windows."""
    rng = np.random.default_rng(6)
    p, declined, truth = calibrated_stream(1200, rng)
    h = Harness(tmp_path / "drift.db")
    events = [
        made(i, "decline" if declined[i] else "approve", "7", score=float(p[i]), probability=float(p[i]))
        for i in range(1200)
    ]
    for b in range(0, 1200, 200):
        await h.service.on_streams(raws("predictions.made", events[b : b + 200], b))
    labels = [label(i, "bad" if truth[i] else "good") for i in range(600)]  # late: half come
    await h.service.on_streams(raws("labels.observed", labels))
    (snap,) = h.service.detectors()["performance_estimates"]
    assert snap["model"] == "credit" and snap["version"] == "7" and snap["calibrated"] is True
    assert snap["windows"] == 3 and snap["estimate"]["rows"] == 500
    realised = snap["realised"]
    # Labels 0..599: window 0 holds 500 of them, window 1 holds 100 (just enough to be judged).
    assert snap["judged_window"] == 1 and realised["labelled"] == 100
    assert abs(realised["gap"]) < 0.08
    assert gauge("estimated", "accuracy") == pytest.approx(snap["estimate"]["accuracy"])
    assert gauge("realised", "accuracy") == pytest.approx(realised["realised_accuracy"])
    assert gauge("gap", "accuracy") == pytest.approx(realised["gap"])
    assert flag("uncalibrated") == 0.0 and flag("estimator_suspect") == 0.0
    h.store.close()

    again = Harness(tmp_path / "drift.db")
    (kept,) = again.service.detectors()["performance_estimates"]
    assert kept["estimate"] == snap["estimate"] and kept["realised"] == snap["realised"]

    # The typed client reads the same answer, through JSON as it travels.
    answer = json.loads(json.dumps(again.service.detectors()))
    (typed,) = Detectors.model_validate(answer).performance_estimates
    assert typed.version == "7" and typed.realised and typed.realised["labelled"] == 100


async def test_predictions_without_a_calibration_are_estimated_from_the_score_and_flagged(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path / "drift.db")
    events = [made(i, "approve", "8", score=0.1) for i in range(600)]
    await h.service.on_streams(raws("predictions.made", events))
    (snap,) = h.service.detectors()["performance_estimates"]
    assert snap["calibrated"] is False and snap["estimate"]["accuracy"] == pytest.approx(0.9)
    assert flag("uncalibrated", "8") == 1.0


async def test_an_estimated_drop_is_published_once_per_version_as_performance_drift(tmp_path: Path) -> None:
    """Item 3: the drop goes out as a DriftDetected of kind "performance" that says what it means;
    later windows, still low, and a restart do not publish it again."""
    rng = np.random.default_rng(7)
    sure, unsure = calibrated_stream(2000, rng, centre=-1.5), calibrated_stream(2000, rng, centre=0.5)
    p, declined, _ = stack(sure, unsure)
    events = [
        made(i, "decline" if declined[i] else "approve", "9", score=float(p[i]), probability=float(p[i]))
        for i in range(len(p))
    ]
    h = Harness(tmp_path / "drift.db")
    before = REGISTRY.get_sample_value("drift_alarms_total", {"kind": "performance", "detector": "CBPE"}) or 0
    for b in range(0, 3000, 100):
        await h.service.on_streams(raws("predictions.made", events[b : b + 100], b))
    [drop] = [e for e in h.sent if e.payload.kind == "performance"]
    assert drop.payload.detector == "CBPE" and drop.payload.model_version == "9"
    assert drop.payload.statistic > drop.payload.threshold == 3.0 and drop.payload.window_size == 500
    assert "before any label" in (drop.payload.meaning or "")
    assert drop.payload.window_start <= drop.payload.window_end  # the dropped window's own event times
    h.store.close()

    again = Harness(tmp_path / "drift.db")  # restarted: the flag stays raised, nothing new goes out
    for b in range(3000, 4000, 100):
        await again.service.on_streams(raws("predictions.made", events[b : b + 100], b))
    assert not [e for e in again.sent if e.payload.kind == "performance"]
    after = REGISTRY.get_sample_value("drift_alarms_total", {"kind": "performance", "detector": "CBPE"})
    assert after == before + 1
    assert again.service.detectors()["performance_estimates"][0]["drop_detected"] is True


async def test_a_canary_interleaved_with_the_champion_leaves_the_champions_monitors_alone(
    tmp_path: Path,
) -> None:
    """Predictions of a canary (v10) interleaved with the champion's (v9): the champion's prediction
    and concept monitors are not restarted at each switch of version and see only its own; each
    version keeps its own online quality and estimate."""
    h = Harness(tmp_path / "drift.db")
    events = []
    for i in range(600):
        canary = i % 4 == 0
        event = made(i, "approve", "10" if canary else "9", score=0.2, probability=0.2)
        if canary:
            event = event.model_copy(update={"payload": event.payload.model_copy(update={"canary": True})})
        events.append(event)
    await h.service.on_streams(raws("predictions.made", events))
    await h.service.on_streams(raws("labels.observed", [label(i, "good") for i in range(600)]))
    watch = h.service.watch
    assert watch.versions == {"credit": "9"} and watch.canaries == {"credit": "10"}
    advice = h.service.canary_recommendation(None, None, min_labels=100, confidence=0.95)
    assert (advice["canary"]["version"], advice["champion"]["version"]) == ("10", "9")
    assert watch.monitors["prediction:credit"].n == 450 and watch.monitors["concept:credit"].n == 450
    assert watch.skipped["canary"] == 150 and watch.skipped["canary_error"] == 150
    quality = {q["version"]: q["labelled"] for q in h.service.detectors()["online_quality"]}
    assert quality == {"9": 450.0, "10": 150.0}
    rows = {e["version"]: e["windows"] for e in h.service.detectors()["performance_estimates"]}
    assert rows == {"9": 1, "10": 1}
