"""RankCusum, the numeric features' sequential detector: fast on a 0.7 sd shift, quiet on stationary
streams of any shape (its threshold from the documented calibration), state kept across a restart,
and hostile values skipped. Fixed seeds throughout; no timing."""

from __future__ import annotations

import math
import pickle
import random
import statistics
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.drift.adapters.store import DriftStore
from services.drift.domain.cusum import RankCusum, arl0_of, threshold_for
from services.drift.domain.detectors import ChiSquare
from services.drift.domain.watch import DriftWatch, WatchConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# The platform's bank: 7 numeric + 13 categorical features, 1 false alarm per 100k rows in all.
BANK = WatchConfig(tuple(f"n{i}" for i in range(7)), tuple(f"c{i}" for i in range(13)))


def detector(seed: int = 0) -> RankCusum:
    return RankCusum(BANK.cusum_reference_size, BANK.cusum_shift, BANK.feature_arl0, seed)


def first_alarm(d: RankCusum, values: list[Any]) -> int | None:
    return next((i for i, x in enumerate(values) if d.update(x).drift_detected), None)


def test_the_threshold_is_the_documented_calibration_for_the_bank() -> None:
    assert BANK.feature_arl0 == 2_000_000  # 100k rows per false alarm x 20 features (Bonferroni)
    d = detector()
    assert d.threshold == threshold_for(2_000_000, 0.35, 1000) == 19.8
    assert arl0_of(19.8, 0.35, 1000) >= 2_000_000 > arl0_of(19.79, 0.35, 1000)  # the smallest such h


def test_a_shift_of_0_7_sd_is_flagged_within_60_rows_at_the_median() -> None:
    delays: list[int] = []
    for seed in range(20):
        rng = random.Random(seed)
        d = detector(seed)
        assert first_alarm(d, [rng.gauss(10, 2) for _ in range(1500)]) is None
        delay = first_alarm(d, [rng.gauss(10 + 0.7 * 2, 2) for _ in range(1000)])
        assert delay is not None
        delays.append(delay)
    assert statistics.median(delays) <= 60


SHAPES: dict[str, Callable[[random.Random], float]] = {
    "gaussian": lambda r: r.gauss(0, 1),
    "four_levels": lambda r: r.choices((1, 2, 3, 4), weights=(14, 23, 16, 47))[0],  # installment rate
    "two_levels": lambda r: 1 if r.random() < 0.85 else 2,  # people liable
    "age_like": lambda r: round(r.gammavariate(6, 6)) + 19,
    "log_normal": lambda r: r.lognormvariate(8, 0.9),  # credit amounts
    "cauchy": lambda r: math.tan(math.pi * (r.random() - 0.5)),  # no mean, no variance
    "pareto_1.1": lambda r: r.paretovariate(1.1),
}


def test_a_stationary_bank_of_every_shape_stays_within_its_false_alarm_budget() -> None:
    """7 features of every shape, heavy tails and ties included, 200k rows each, through the real
    monitors at the platform's per-feature ARL0 (2M updates). Expected at that rate: 0.7 alarms in
    the 1.4M updates; 3 or more would have a Poisson probability of 3 %. With this seed (the first
    one tried) there is exactly one, on the log-normal feature at row 164,918: the seed was not
    changed to hide it. The rate itself is measured over 1M+ rows by bench/drift_detection.py."""
    config = WatchConfig(tuple(SHAPES), (), false_alarms_per_100k=0.35)  # 100k / 0.35 x 7 = 2M
    assert config.feature_arl0 == 2_000_000
    watch = DriftWatch(config)
    rng = random.Random(11)
    draws = list(SHAPES.items())
    findings = []
    for b in range(0, 200_000, 1000):
        batch = [({name: draw(rng) for name, draw in draws}, T0, b + i) for i in range(1000)]
        findings += watch.observe_records(batch, None)
    assert [(f.feature, f.last_source) for f in findings] == [("log_normal", 164_918)]
    skipped = [watch.monitors[f"data:{name}"].state()["skipped"] for name in SHAPES]
    assert skipped == [0] * len(SHAPES)


def test_heavy_tailed_features_raise_nothing_where_a_mean_test_would() -> None:
    """Cauchy and Pareto(1.1) values: 100k rows each, no alarm (ranks bound each value's weight)."""
    for seed, shape in enumerate(("cauchy", "pareto_1.1")):
        rng = random.Random(20 + seed)
        d = detector(seed)
        assert first_alarm(d, [SHAPES[shape](rng) for _ in range(100_000)]) is None


def test_hostile_values_are_skipped_and_counted_never_alarm() -> None:
    rng = random.Random(7)
    hostile: list[Any] = [math.nan, math.inf, -math.inf, 10**400, "12.5", None, True, [], b"1", object()]
    d = detector()
    stream: list[Any] = []
    for i in range(20_000):
        stream.append(rng.gauss(0, 1))
        if i % 10 == 0:
            stream.append(hostile[(i // 10) % len(hostile)])
        if i % 97 == 0:  # huge finite values count, as the most extreme rank: they move it little
            stream.append(rng.choice((1e308, -1e308, 1e30)))
    assert first_alarm(d, stream) is None
    assert d.skipped == 2000
    assert d.statistic < d.threshold  # type: ignore[operator]


def test_hostile_values_in_records_neither_crash_the_watch_nor_alarm() -> None:
    rng = random.Random(8)
    watch = DriftWatch(WatchConfig(("x",), ("c",)))
    values: list[Any] = [math.nan, math.inf, "abc", None, 10**400, -1e308, {"a": 1}]
    batch = [
        ({"x": rng.choice(values) if i % 5 == 0 else rng.gauss(0, 1), "c": "a"}, T0, i) for i in range(5000)
    ]
    assert watch.observe_records(batch, None) == []


def test_state_survives_a_save_and_restore_mid_stream(tmp_path: Path) -> None:
    rng = random.Random(9)
    config = WatchConfig(("x",), (), false_alarms_per_100k=0.05)  # the bank's 2M-update ARL0
    rows = [({"x": rng.gauss(0, 1) + (0.7 if i >= 3000 else 0.0)}, T0, i) for i in range(4000)]
    uninterrupted = DriftWatch(config)
    expected = [
        f.last_source
        for b in range(0, 4000, 500)
        for f in uninterrupted.observe_records(rows[b : b + 500], None)
    ]
    assert len(expected) == 1 and 3000 < expected[0] <= 3200

    watch = DriftWatch(config)
    for b in range(0, 2500, 500):
        watch.observe_records(rows[b : b + 500], None)
    store = DriftStore(tmp_path / "drift.db")
    store.save(watch, {}, [])
    store.close()
    restored = DriftStore(tmp_path / "drift.db").load(config)
    found = [
        f.last_source
        for b in range(2500, 4000, 500)
        for f in restored.observe_records(rows[b : b + 500], None)
    ]
    assert found == expected
    before, after = watch.monitors["data:x"].detector, restored.monitors["data:x"].detector
    assert pickle.dumps(before) == pickle.dumps(pickle.loads(pickle.dumps(before)))
    assert isinstance(after, RankCusum) and after.threshold == before.threshold


def test_a_restart_applies_the_configured_chi_square_level_and_keeps_the_counts(tmp_path: Path) -> None:
    """Monitors are pickled with their parameters. The categorical test's level is a decision, not
    state: the configured one (a changed DRIFT_CHI_SQUARE_ALPHA, or a new default) applies from the
    restart on, to the monitor and to the copy it re-baselines from, and the counts stay. A changed
    reference size makes the counts meaningless: that monitor starts over with the configured one."""
    rng = random.Random(3)
    old = WatchConfig((), ("c",), chi_square_alpha=1e-7, chi_square_reference=500)
    watch = DriftWatch(old)
    watch.observe_records([({"c": rng.choice("abc")}, T0, i) for i in range(900)], None)
    store = DriftStore(tmp_path / "drift.db")
    store.save(watch, {}, [])
    store.close()
    restored = DriftStore(tmp_path / "drift.db").load(replace(old, chi_square_alpha=1e-3))
    monitor, before = restored.monitors["data:c"], watch.monitors["data:c"]
    assert isinstance(monitor.detector, ChiSquare) and isinstance(monitor.prototype, ChiSquare)
    assert monitor.detector.alpha == monitor.prototype.alpha == 1e-3
    assert isinstance(before.detector, ChiSquare) and before.detector.alpha == 1e-7
    assert monitor.detector._ref == before.detector._ref and monitor.detector._ref_n == 500

    resized = DriftStore(tmp_path / "drift.db").load(replace(old, chi_square_reference=2000))
    fresh = resized.monitors["data:c"].detector
    assert isinstance(fresh, ChiSquare) and fresh.reference_size == 2000 and fresh._ref_n == 0
