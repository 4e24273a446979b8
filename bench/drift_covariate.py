"""Covariate drift on the German-credit generator: the old numeric detector (MeanShift) vs RankCusum.

Both run as the drift service runs them: a DriftWatch over all 20 features (7 numeric, 13
categorical), default settings except `numeric_detector`, batches of 500 records, fed the SAME rows.

1. Rows to alarm: per seed, `--rows` new applicants from `workbench.applicant_generator` (seeded),
   `credit_amount` changed from row `--at` on: + 0.5 / 0.7 / 1.0 sd (sd of the generator's
   credit_amount over 200k draws) or x 1.6 / x 1.8. The delay is the first `credit_amount` alarm at or
   after the change minus the change row; no alarm by the end counts as missed (above every delay in
   the median). Median with its 95 % order-statistic interval over the seeds; ratio old / new.
2. False alarms: `--stationary` rows without change through both watches (all 20 monitors), alarms
   per 100k rows with a one-sided 95 % Poisson upper bound.
3. Cost: microseconds per record of `observe_records` for the whole bank, median of 3 repeats over
   the first 100k stationary rows (the 7 numeric monitors alone as well).

    .venv/bin/python -m bench.drift_covariate [--seeds 60] [--stationary 1000000]
(also run by bench.drift_detection unless --no-covariate).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scipy.stats import binom, chi2

from feature_repo.names import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from services.drift.domain.watch import DriftWatch, WatchConfig
from workbench.demo_data import applicant_generator

RESULTS = Path(__file__).resolve().parent / "results" / "drift_covariate.json"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DETECTORS = ("MeanShift", "RankCusum")  # old, new
FEATURE = "credit_amount"
Record = dict[str, Any]


def config(detector: str) -> WatchConfig:
    return WatchConfig(NUMERIC_FEATURES, CATEGORICAL_FEATURES, numeric_detector=detector)


def rows(seed: int, n: int) -> list[Record]:
    sampler = applicant_generator().sampler(seed)
    return [sampler.draw()[0] for _ in range(n)]


def changes(sd: float) -> dict[str, Any]:
    shifted = {f"mean +{d} sd": (lambda x, s=d * sd: x + s) for d in (0.5, 0.7, 1.0)}
    scaled = {f"scale x{f}": (lambda x, f=f: x * f) for f in (1.6, 1.8)}
    return shifted | scaled


def alarms(detector: str, stream: list[Record]) -> list[tuple[int, str]]:
    watch = DriftWatch(config(detector))
    found: list[tuple[int, str]] = []
    for b in range(0, len(stream), 500):
        batch = [(r, T0, b + i) for i, r in enumerate(stream[b : b + 500])]
        found += [(f.last_source, f.feature or "") for f in watch.observe_records(batch, "m")]
    return found


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """Median and its 95 % distribution-free interval (order statistics, binomial ranks)."""
    x, n = sorted(values), len(values)
    j = 0  # the j-th smallest .. j-th largest: P(Bin(n, 1/2) < j) <= 2.5 % on each side
    while binom.cdf(j, n, 0.5) <= 0.025:
        j += 1
    j = max(j, 1)
    return statistics.median(x), x[j - 1], x[n - j]


def bench_delays(seeds: int, n: int, at: int, sd: float) -> dict[str, Any]:
    cases = changes(sd)
    delays: dict[str, dict[str, list[float]]] = {c: {d: [] for d in DETECTORS} for c in cases}
    before: dict[str, int] = dict.fromkeys(DETECTORS, 0)
    for seed in range(seeds):
        base = rows(1000 + seed, n)
        for case, change in cases.items():
            stream = base[:at] + [{**r, FEATURE: change(r[FEATURE])} for r in base[at:]]
            for detector in DETECTORS:
                found = alarms(detector, stream)
                before[detector] += sum(1 for i, _ in found if i < at)
                hits = [i for i, f in found if f == FEATURE and i >= at]
                delays[case][detector].append(hits[0] - at if hits else float("inf"))
    out: dict[str, Any] = {}
    for case, per in delays.items():
        row: dict[str, Any] = {}
        for detector, values in per.items():
            median, low, high = median_interval(values)
            row[detector] = {
                "median_rows": _finite(median),
                "ci95": [_finite(low), _finite(high)],
                "missed": sum(1 for v in values if v == float("inf")),
                "delays": [_finite(v) for v in values],
            }
        old, new = (statistics.median(per[d]) for d in DETECTORS)
        row["ratio_old_over_new"] = round(old / new, 2) if new != float("inf") else None
        out[case] = row
    return {
        "seeds": seeds,
        "rows": n,
        "change_at": at,
        "sd": round(sd, 1),
        "alarms_before_change": before,
        "cases": out,
    }


def _finite(value: float) -> float | None:
    return None if value == float("inf") else value


def bench_stationary(n: int, chunk: int = 20_000) -> dict[str, Any]:
    watches = {d: DriftWatch(config(d)) for d in DETECTORS}
    found: dict[str, list[tuple[int, str]]] = {d: [] for d in DETECTORS}
    sampler = applicant_generator().sampler(7)
    for start in range(0, n, chunk):
        batch = [(sampler.draw()[0], T0, start + i) for i in range(chunk)]
        for d, watch in watches.items():
            for b in range(0, chunk, 500):
                found[d] += [
                    (f.last_source, f.feature or "") for f in watch.observe_records(batch[b : b + 500], "m")
                ]
    out: dict[str, Any] = {"rows": n, "features": len(NUMERIC_FEATURES) + len(CATEGORICAL_FEATURES)}
    for d, hits in found.items():
        upper = float(chi2.ppf(0.95, 2 * len(hits) + 2)) / 2
        out[d] = {
            "alarms": len(hits),
            "per_100k_rows": round(len(hits) / n * 1e5, 3),
            "per_100k_rows_upper95": round(upper / n * 1e5, 3),
            "alarms_at": hits,
        }
    return out


def cost(detector: str, stream: list[Record], numeric_only: bool) -> float:
    categorical = () if numeric_only else CATEGORICAL_FEATURES
    watch = DriftWatch(WatchConfig(NUMERIC_FEATURES, categorical, numeric_detector=detector))
    batches = [
        [(r, T0, b + i) for i, r in enumerate(stream[b : b + 500])] for b in range(0, len(stream), 500)
    ]
    started = time.perf_counter()
    for batch in batches:
        watch.observe_records(batch, "m")
    return (time.perf_counter() - started) / len(stream) * 1e6


def bench_cost(n: int) -> dict[str, Any]:
    stream = rows(7, n)
    out: dict[str, Any] = {"rows": n, "repeats": 3}
    for scope, numeric_only in (("all_20_features", False), ("7_numeric_features", True)):
        per = {
            d: round(statistics.median(cost(d, stream, numeric_only) for _ in range(3)), 2) for d in DETECTORS
        }
        out[scope] = {
            "us_per_record": per,
            "ratio_new_over_old": round(per["RankCusum"] / per["MeanShift"], 2),
        }
    return out


def run(seeds: int, n: int, at: int, stationary: int, cost_rows: int) -> dict[str, Any]:
    started = time.perf_counter()
    sd = statistics.pstdev(r[FEATURE] for r in rows(99, 200_000))
    result: dict[str, Any] = {"delays": bench_delays(seeds, n, at, sd)}
    print(
        json.dumps(
            {c: {k: v for k, v in r.items() if k != "delays"} for c, r in result["delays"]["cases"].items()},
            default=str,
        ),
        flush=True,
    )
    result["cost"] = bench_cost(cost_rows)
    print(json.dumps(result["cost"]), flush=True)
    result["stationary"] = bench_stationary(stationary)
    print(json.dumps(result["stationary"], default=str), flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=60)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--at", type=int, default=2000)
    parser.add_argument("--stationary", type=int, default=1_000_000)
    parser.add_argument("--cost-rows", type=int, default=100_000)
    args = parser.parse_args()
    result = run(args.seeds, args.rows, args.at, args.stationary, args.cost_rows)
    result["command"] = (
        f".venv/bin/python -m bench.drift_covariate --seeds {args.seeds} --rows {args.rows} --at {args.at} "
        f"--stationary {args.stationary} --cost-rows {args.cost_rows}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"{result['seconds']} s; results in {RESULTS}")


if __name__ == "__main__":
    main()
