"""Drift detectors, monitors and the label join, pure: known drift points are found within their
expected delay, stationary streams of the same length raise nothing, one change raises one alarm,
the join stays bounded under delayed and missing labels, and the whole watch survives a pickle."""

from __future__ import annotations

import doctest
import pickle
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from services.drift.domain import detectors, error_detectors, join, monitor
from services.drift.domain.detectors import ChiSquare, MeanShift
from services.drift.domain.join import LabelJoin
from services.drift.domain.monitor import Monitor
from services.drift.domain.watch import DriftWatch, Prediction, WatchConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("module", [detectors, error_detectors, monitor, join])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


def numeric_stream(n: int, change_at: int | None, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [
        rng.lognormvariate(0.0, 0.6) * (1.5 if change_at is not None and i >= change_at else 1.0)
        for i in range(n)
    ]


def categorical_stream(n: int, change_at: int | None, seed: int) -> list[str]:
    rng = random.Random(seed)
    before, after = [6, 3, 1, 1], [3, 3, 3, 1]
    return [
        rng.choices("abcd", weights=after if change_at is not None and i >= change_at else before)[0]
        for i in range(n)
    ]


def alarms(monitor: Monitor, stream: Sequence[object]) -> list[int]:
    return [i for i, x in enumerate(stream) if monitor.update(x).drift_detected]


def windowed(detector: MeanShift | ChiSquare) -> Monitor:
    return Monitor(detector, warm_up=200, confirmations=2, debounce=400, cooldown=20_000)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mean_shift_finds_a_scale_change_within_its_window_and_stays_quiet_without_one(seed: int) -> None:
    drifted = alarms(windowed(MeanShift(500, 200, 50, 6.0)), numeric_stream(20_000, 10_000, seed))
    assert len(drifted) == 1 and 10_000 <= drifted[0] <= 10_000 + 300
    assert alarms(windowed(MeanShift(500, 200, 50, 6.0)), numeric_stream(20_000, None, seed)) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chi_square_finds_a_category_shift_and_stays_quiet_without_one(seed: int) -> None:
    drifted = alarms(windowed(ChiSquare(500, 500, 50, 1e-7)), categorical_stream(20_000, 10_000, seed))
    assert len(drifted) == 1 and 10_000 <= drifted[0] <= 10_000 + 600
    assert alarms(windowed(ChiSquare(500, 500, 50, 1e-7)), categorical_stream(20_000, None, seed)) == []


def test_chi_square_holds_its_level_when_the_reference_is_a_sample_too() -> None:
    """Under no change, a check flags at about its level alpha, reference noise included: 2000
    independent (reference, window) pairs of 500 draws each over 5 categories, one of them rare (2 %),
    at alpha 1 %. The goodness-of-fit test (the reference's proportions taken as exact) flagged 343."""
    rng = random.Random(4)
    weights = [50, 25, 15, 8, 2]
    flagged = 0
    for _ in range(2000):
        detector = ChiSquare(reference_size=500, window_size=500, block=500, alpha=0.01)
        for x in rng.choices("abcde", weights=weights, k=1000):
            detector.update(x)
        assert detector.threshold is not None  # the window was tested once
        flagged += detector.drift_detected
    assert 5 <= flagged <= 40  # expected 20 (binomial sd 4.5)


def error_stream(n: int, change_at: int | None, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [
        float(rng.random() < (0.35 if change_at is not None and i >= change_at else 0.1)) for i in range(n)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_concept_monitor_finds_an_error_jump_within_100_rows(seed: int) -> None:
    config = WatchConfig((), ())
    drifted = alarms(config.concept_monitor(), error_stream(20_000, 10_000, seed))
    assert drifted and 10_000 <= drifted[0] <= 10_100
    assert all(a >= 10_000 for a in drifted)
    assert alarms(config.concept_monitor(), error_stream(20_000, None, seed)) == []


def test_warm_up_and_cooldown_silence_a_detector_that_flags_every_block() -> None:
    stream = [0.0, 1.0] * 300 + [5.0, 6.0] * 5000
    quiet = Monitor(MeanShift(300, 100, 50, 5.0), warm_up=0, confirmations=1, cooldown=100_000)
    assert len(alarms(quiet, stream)) == 1
    chatty = Monitor(MeanShift(300, 100, 50, 5.0), warm_up=0, confirmations=1, cooldown=0)
    # without a cooldown, the re-baselined detector stays quiet too: the new regime is its reference
    assert len(alarms(chatty, stream)) == 1
    late = Monitor(MeanShift(300, 100, 50, 5.0), warm_up=20_000, confirmations=1, cooldown=0)
    assert alarms(late, stream) == []


@pytest.mark.parametrize("batch", [1, 7, 50, 500])
def test_an_alarm_names_a_message_at_or_before_the_start_of_its_window(batch: int) -> None:
    m = Monitor(MeanShift(100, 100, 50, 5.0), confirmations=1)
    stream = [float(i % 2) for i in range(1000)] + [10.0 + i % 2 for i in range(500)]
    for start in range(0, len(stream), batch):
        m.mark(T0 + timedelta(seconds=start), start)  # the source is the offset of the batch's first value
        for x in stream[start : start + batch]:
            m.update(x)
    assert m.alarms == 1 and m.last_alarm is not None
    window_start = m.last_alarm.at_update - m.last_alarm.window_size  # 0-based offset of its first value
    assert window_start - 4000 // 128 - batch <= m.last_alarm.window_start_source <= window_start


def test_the_join_stays_bounded_with_delayed_out_of_order_and_missing_labels() -> None:
    rng = random.Random(7)
    j = LabelJoin(max_pending=300, ttl_s=3600)
    labels: list[tuple[float, str]] = []
    peak = 0
    for i in range(10_000):
        at = i * 1.0
        j.add_prediction(f"p{i}", f"e{i}", i, at)
        if rng.random() < 0.7:  # 30% never labelled
            labels.append((at + rng.uniform(0, 200), f"p{i}"))  # delayed up to 200 s, any order
        due = sorted(x for x in labels if x[0] <= at)
        labels = [x for x in labels if x[0] > at]
        for when, pid in due:
            j.add_label(pid if rng.random() < 0.5 else None, f"e{pid[1:]}", "bad", when)
        peak = max(peak, len(j.predictions) + len(j.labels), len(j.by_entity))
    stats = j.stats()
    assert peak <= 2 * 300
    assert stats["joined"] >= 0.6 * 10_000  # nearly every label found its prediction
    assert stats["evicted"] > 0  # the unlabelled 30% were pushed out, not kept forever


def test_the_join_expires_by_event_time_and_matches_labels_that_come_first() -> None:
    j = LabelJoin(max_pending=100, ttl_s=60)
    assert j.add_label("p1", "e1", "good", at=0.0) is None
    assert j.add_prediction("p1", "e1", "x", at=10.0) is not None
    j.add_prediction("p2", "e2", "y", at=20.0)
    assert j.add_label(None, "e2", "bad", at=200.0) is None  # p2 expired: the label waits instead
    assert j.stats()["expired"] == 1 and len(j.labels) == 1


def prediction(i: int, version: str = "1", decision: str = "approve") -> Prediction:
    return Prediction(f"p{i}", f"e{i}", "credit", version, 0.2, decision)


def test_the_watch_joins_errors_per_model_version_and_survives_a_pickle() -> None:
    watch = DriftWatch(WatchConfig(("x",), ("c",), warm_up=0))
    found = watch.observe_predictions([(prediction(i), T0, None) for i in range(5)])
    assert found == [] and len(watch.join.predictions) == 5
    clone: DriftWatch = pickle.loads(pickle.dumps(watch))
    for w in (watch, clone):
        w.observe_labels([(None, f"e{i}", "bad", T0, None) for i in range(3)])
        assert w.monitors["concept:credit"].n == 3 and w.join.joined == 3
    watch.observe_predictions([(prediction(9, version="2"), T0, None)])
    watch.observe_labels([("p3", "e3", "bad", T0, None)])  # made by version 1: not fed
    assert watch.monitors["concept:credit"].n == 0 and watch.skipped == {"older_version": 1}


def test_the_concept_alarm_dates_the_change_within_a_few_updates() -> None:
    """A label swap (error rate 0.22 -> 0.78) after 1500 updates, 60 seeds: the CUSUM's last zero can
    be hundreds of updates early; the alarm's window must start at the change, or a retrain "since
    the change" learns the old world too (seen in the closed-loop demo)."""
    errors = []
    for seed in range(60):
        rng = random.Random(seed)
        detector = error_detectors.BernoulliCusum(reference_size=500, shift=0.1, threshold=12.0)
        stream = [float(rng.random() < 0.22) for _ in range(1500)]
        stream += [float(rng.random() < 0.78) for _ in range(300)]
        first = next(i for i, x in enumerate(stream) if detector.update(x).drift_detected)
        since_change = first - 1500 + 1
        assert 0 < since_change <= 100
        errors.append(detector.window_size - since_change)  # > 0: dated too early
    errors.sort()
    assert abs(errors[30]) <= 2 and sum(abs(e) <= 10 for e in errors) >= 54, errors


def test_rise_point_finds_no_rise_in_a_fall_or_a_flat_stream() -> None:
    assert error_detectors.rise_point(bytes([1] * 50 + [0] * 50)) == 0
    assert error_detectors.rise_point(bytes([0, 1] * 50)) == 0
    assert error_detectors.rise_point(b"") == 0
    assert error_detectors.rise_point(bytes([0] * 90 + [1] * 10)) == 10
