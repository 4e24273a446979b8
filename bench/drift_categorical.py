"""The categorical drift test: goodness of fit (the old test) vs homogeneity (the service's), same rows.

Both run as the drift service runs its 13 categorical monitors: a DriftWatch over the categorical
features (ChiSquare: window 500, block 50; two flags within 400 updates for an alarm), batches of
500 records. The test at each block's end and the reference differ:
- before: goodness of fit at alpha 1e-7 against a 500-value reference: the window's counts against
  the reference's (smoothed) proportions taken as exact, the reference's own sampling noise left out;
- now: homogeneity of the 2 x k table of reference and window counts (services/drift/domain/
  detectors.py) at the service's defaults (`DRIFT_CHI_SQUARE_ALPHA`, `DRIFT_CHI_SQUARE_REFERENCE`),
  or at `--alpha` / `--reference`.

1. False alarms: `--streams` fresh stationary streams of `--stream-rows` rows each from
   `workbench.applicant_generator` (seeds 7, 8, ...; no change), alarms per 100k rows with a
   one-sided 95 % Poisson upper bound. The 7 numeric monitors (RankCusum, unchanged) run on the same
   streams, so the whole bank's rate is known too.
2. Rows to alarm, per seed (`--seeds`), on `--rows` new applicants changed from row `--at` on:
   - `housing`: one applicant in ten more says `rent` (+10 points of share);
   - `purpose`: one applicant in ten more says `business`;
   - prior shift: the share of `bad` applicants goes from the generator's 0.3 to 0.6, each applicant
     drawn from its class (every categorical feature moves a little; `status_of_existing_checking_account`
     most).
   The delay is the first alarm at or after the change (of the changed feature; of any feature for
   the prior shift) minus the change row; none by the end counts as missed. Median with its 95 %
   order-statistic interval.

    .venv/bin/python -m bench.drift_categorical [--seeds 40] [--streams 100] [--alpha A] [--reference R]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from scipy.stats import chi2

from bench.drift_covariate import median_interval
from feature_repo.names import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from services.drift.domain.detectors import ChiSquare, Detector, chi_square_critical
from services.drift.domain.watch import DriftWatch, WatchConfig
from services.drift.settings import DriftSettings
from workbench.demo_data import applicant_generator

RESULTS = Path(__file__).resolve().parent / "results" / "drift_categorical.json"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TESTS = ("goodness_of_fit", "homogeneity")  # old, new
OLD_ALPHA, OLD_REFERENCE = 1e-7, 500  # the goodness-of-fit test's defaults
NUMERIC = "numeric_rank_cusum"  # the 7 numeric monitors on the same stationary streams, for the whole bank
Record = dict[str, Any]


class GoodnessOfFit(ChiSquare):
    """The test before: the window against the reference's proportions (+0.5 smoothing) as if exact."""

    def _test(self) -> None:
        categories = set(self._ref) | {k for k, v in self._window.items() if v}
        k = len(categories)
        if k < 2:
            return
        total = self._ref_n + 0.5 * k
        stat = 0.0
        for key in categories:
            expected = self.window_size * (self._ref.get(key, 0) + 0.5) / total
            diff = self._window.get(key, 0) - expected
            stat += diff * diff / expected
        self.statistic = stat
        self.threshold = chi_square_critical(k - 1, self.alpha)
        self.drift_detected = stat > self.threshold

    def clone(self) -> Detector:
        return GoodnessOfFit(self.reference_size, self.window_size, self.block, self.alpha)


@dataclass(frozen=True)
class OldConfig(WatchConfig):
    def categorical_detector(self) -> ChiSquare:
        return GoodnessOfFit(OLD_REFERENCE, self.chi_square_window, self.block, OLD_ALPHA)


def watch(test: str, chosen: dict[str, Any]) -> DriftWatch:
    """The categorical monitors with the old test, or with the service's and `chosen` (WatchConfig's
    field names: --alpha and --reference, when given) over its defaults."""
    if test == "goodness_of_fit":
        return DriftWatch(OldConfig((), CATEGORICAL_FEATURES))
    return DriftWatch(replace(WatchConfig((), CATEGORICAL_FEATURES), **chosen))


def feed(w: DriftWatch, rows: list[Record], first: int = 0) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for b in range(0, len(rows), 500):
        batch = [(r, T0, first + b + i) for i, r in enumerate(rows[b : b + 500])]
        found += [(f.last_source, f.feature or "") for f in w.observe_records(batch, "m")]
    return found


def bench_stationary(streams: int, n: int, chosen: dict[str, Any]) -> dict[str, Any]:
    """`streams` fresh starts of `n` rows each (seeds 7, 8, ...): every stream draws its own references,
    as a monitor does after each start, alarm or new champion. One long stream would keep a lucky
    reference for good and understate the rate."""
    found: dict[str, list[tuple[int, int, str]]] = {t: [] for t in (*TESTS, NUMERIC)}
    for stream in range(streams):
        sampler = applicant_generator().sampler(7 + stream)
        rows = [sampler.draw()[0] for _ in range(n)]
        for t in TESTS:
            found[t] += [(stream, i, f) for i, f in feed(watch(t, chosen), rows)]
        numeric = DriftWatch(WatchConfig(NUMERIC_FEATURES, ()))  # the rest of the bank, unchanged
        found[NUMERIC] += [(stream, i, f) for i, f in feed(numeric, rows)]
    total = streams * n
    out: dict[str, Any] = {"streams": streams, "rows_each": n, "features": len(CATEGORICAL_FEATURES)}
    for t, hits in found.items():
        upper = float(chi2.ppf(0.95, 2 * len(hits) + 2)) / 2
        out[t] = {
            "alarms": len(hits),
            "streams_with_an_alarm": len({s for s, _, _ in hits}),
            "per_100k_rows": round(len(hits) / total * 1e5, 3),
            "per_100k_rows_upper95": round(upper / total * 1e5, 3),
            "alarms_at": hits,
        }
    return out


def more_of(feature: str, value: str, share: float) -> Callable[[list[Record], int], list[Record]]:
    def change(rows: list[Record], seed: int) -> list[Record]:
        rng = random.Random(seed)
        return [{**r, feature: value} if rng.random() < share else r for r in rows]

    return change


def prior_shift(bad_share: float) -> Callable[[list[Record], int], list[Record]]:
    generator = applicant_generator()

    def change(rows: list[Record], seed: int) -> list[Record]:
        rng = np.random.default_rng(seed)
        bad = int(rng.binomial(len(rows), bad_share))
        drawn = generator.draw_batch("bad", bad, rng) + generator.draw_batch("good", len(rows) - bad, rng)
        random.Random(seed).shuffle(drawn)
        return drawn

    return change


CASES: dict[str, tuple[str | None, Callable[[list[Record], int], list[Record]]]] = {
    "housing: +10 points of rent": ("housing", more_of("housing", "rent", 0.10)),
    "purpose: +10 points of business": ("purpose", more_of("purpose", "business", 0.10)),
    "prior shift: bad share 0.3 -> 0.6": (None, prior_shift(0.6)),
}


def bench_delays(seeds: int, n: int, at: int, chosen: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": seeds, "rows": n, "change_at": at, "cases": {}}
    before = dict.fromkeys(TESTS, 0)
    delays: dict[str, dict[str, list[float]]] = {c: {t: [] for t in TESTS} for c in CASES}
    for seed in range(seeds):
        sampler = applicant_generator().sampler(2000 + seed)
        base = [sampler.draw()[0] for _ in range(n)]
        for number, (case, (feature, change)) in enumerate(CASES.items()):
            stream = base[:at] + change(base[at:], seed)
            for t in TESTS:
                found = feed(watch(t, chosen), stream)
                if number == 0:  # the rows before the change are the same in every case: count them once
                    before[t] += sum(1 for i, _ in found if i < at)
                hits = [i for i, f in found if i >= at and feature in (None, f)]
                delays[case][t].append(hits[0] - at if hits else float("inf"))
    for case, per in delays.items():
        row: dict[str, Any] = {}
        for t, values in per.items():
            median, low, high = median_interval(values)
            row[t] = {
                "median_rows": None if median == float("inf") else median,
                "ci95": [None if v == float("inf") else v for v in (low, high)],
                "missed": sum(1 for v in values if v == float("inf")),
            }
        out["cases"][case] = row
    out["alarms_before_change"] = before
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--at", type=int, default=4000, help="after the references are full (2,500 rows)")
    parser.add_argument("--streams", type=int, default=100, help="stationary streams (fresh starts)")
    parser.add_argument("--stream-rows", type=int, default=10_000, help="rows of each stationary stream")
    parser.add_argument("--alpha", type=float, help="the homogeneity test's level (default: the service's)")
    parser.add_argument("--reference", type=int, help="its reference size (default: the service's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if min(args.seeds, args.streams, args.stream_rows) < 1 or not 0 < args.at < args.rows:
        parser.error("--seeds, --streams and --stream-rows must be at least 1, and --at inside --rows")
    chosen = {
        name: value
        for name, value in (("chi_square_alpha", args.alpha), ("chi_square_reference", args.reference))
        if value is not None
    }
    try:  # the service's own bounds on them (services/drift/settings.py), not a copy
        DriftSettings(**chosen)
    except ValidationError as refused:
        parser.error("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in refused.errors()))
    started = time.perf_counter()
    now = replace(WatchConfig((), ()), **chosen)
    result: dict[str, Any] = {
        "alpha": {"goodness_of_fit": OLD_ALPHA, "homogeneity": now.chi_square_alpha},
        "reference": {"goodness_of_fit": OLD_REFERENCE, "homogeneity": now.chi_square_reference},
    }
    result["delays"] = bench_delays(args.seeds, args.rows, args.at, chosen)
    print(json.dumps({k: v for k, v in result["delays"].items() if k != "seeds"}), flush=True)
    result["stationary"] = bench_stationary(args.streams, args.stream_rows, chosen)
    print(json.dumps({t: result["stationary"][t]["alarms"] for t in (*TESTS, NUMERIC)}), flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["command"] = (
        f".venv/bin/python -m bench.drift_categorical --seeds {args.seeds} --rows {args.rows} --at {args.at} "
        f"--streams {args.streams} --stream-rows {args.stream_rows}"
        + (f" --alpha {args.alpha}" if args.alpha else "")
        + (f" --reference {args.reference}" if args.reference else "")
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"{result['seconds']} s; results in {args.out}")


if __name__ == "__main__":
    main()
