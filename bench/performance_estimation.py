"""Performance estimated before the labels arrive (CBPE, services/drift/domain/estimate.py) on
streams of known true performance, with NannyML's own CBPE as the baseline in the same run.

Streams (bench/performance_estimation_streams.py): a calibrated model of the platform's pipeline on
the German-credit generator, `--before` rows then `--after` rows under a covariate shift (inputs
selected by tilting, labels the generator's own) or the demo's `credit_amount x1.6` injection; a
calibrated model on Agrawal function 0 whose labels switch to function 2/4/6 (concept drift).

1. Error: per window of `--window` rows, |estimated - realised| accuracy and ROC AUC, before and
   after the change; per seed the mean over windows, then the median over seeds.
2. Rows to alarm after the change: PerformanceEstimator's `drop_detected` (its defaults) vs the
   label-based concept monitor (WatchConfig().concept_monitor(): BernoulliCusum) with labels arriving
   `delay` rows after their prediction (the monitor sees the same error sequence, `delay` rows
   later), and `estimator_suspect` with the labels fed back into the estimator with that delay.
3. False alarms: windows flagged `drop_detected` per 100k rows on stationary streams, one-sided 95 %
   Poisson upper bound; the same rule with other (drop_limit, drop_z, windows in the reference) on
   the same window estimates (GRID in bench/performance_estimation_core.py), with their delays.
4. Cost: microseconds per PerformanceEstimator.observe (window estimates included), median of 5.
5. With --nannyml: NannyML's CBPE (its own venv, scripts/install-nannyml.sh) on the same streams,
   fitted on a labelled sample of the pre-change population, scored on the same windows.

    .venv/bin/python -m bench.performance_estimation [--seeds 5] [--quick] [--nannyml]
    .venv/bin/python -m bench.performance_estimation_table   # the doc's tables from the results
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from scipy.stats import chi2

from bench import performance_estimation_nannyml as nanny
from bench import performance_estimation_streams as streams
from bench.performance_estimation_core import (
    DELAYS,
    GRID,
    bench_stream,
    errors,
    estimator_alarms,
    grid_alarms,
    grid_label,
    summarise,
    windows,
)
from services.drift.domain.estimate import PerformanceEstimator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "performance_estimation.json"


def bench_stationary(seeds: int, rows: int, size: int) -> dict[str, Any]:
    flagged, suspect, total, maes = 0, 0, 0, []
    grid = dict.fromkeys((grid_label(*g) for g in GRID), 0)
    for seed in range(seeds):
        s = streams.credit_stationary(seed, rows)
        ws = windows(s, size)
        maes.append(errors(ws, None, size)["before"])
        found = estimator_alarms(s, 0, size)
        flagged += len([r for r in found["drop_detected"] if r % size == 0])
        suspect += len({(r - 1) // size for r in found["estimator_suspect"]})  # windows, not checks
        for g in GRID:
            grid[grid_label(*g)] += len(grid_alarms(ws, *g))
        total += rows

    def rate(k: int) -> dict[str, float]:
        upper = float(chi2.ppf(0.95, 2 * k + 2)) / 2
        return {
            "windows": k,
            "per_100k_rows": round(k / total * 1e5, 3),
            "per_100k_rows_upper95": round(upper / total * 1e5, 3),
        }

    return {
        "rows": total,
        "seeds": seeds,
        "drop_detected": rate(flagged),
        "estimator_suspect_delay_0": rate(suspect),
        "errors": {k: round(statistics.median(m[k] for m in maes), 4) for k in maes[0]},
        "grid": {g: rate(k) for g, k in grid.items()},
    }


def bench_cost(rows: int, size: int, repeats: int = 5) -> dict[str, Any]:
    s = streams.credit_stationary(99, rows)
    p, d = s.probability.tolist(), s.decided.tolist()
    timings = []
    for _ in range(repeats):
        est = PerformanceEstimator(window_size=size)
        started = time.perf_counter()
        for i in range(rows):
            est.observe(p[i], d[i])
        timings.append((time.perf_counter() - started) / rows * 1e6)
    est = PerformanceEstimator(window_size=size)
    for i in range(rows):
        est.observe(p[i], d[i])
    started = time.perf_counter()
    for _ in range(200):
        est.snapshot()
    return {
        "rows": rows,
        "repeats": repeats,
        "us_per_observe": round(statistics.median(timings), 3),
        "ms_per_snapshot": round((time.perf_counter() - started) / 200 * 1e3, 3),
    }


def nannyml_errors(
    found: dict[str, Any], keys: dict[str, tuple[str, int]], runs: dict[str, list[dict[str, Any]]], size: int
) -> dict[str, Any]:
    """NannyML's estimates scored against the same windows' truth, median over seeds per case."""
    per_case: dict[str, list[dict[str, Any]]] = {}
    for key, (case, seed) in keys.items():
        run, got = runs[case][seed], found["cases"][key]
        ws = [
            {**w, "accuracy": a, "auc": u}
            for w, a, u in zip(run["windows"], got["accuracy"], got["roc_auc"], strict=False)
        ]
        per_case.setdefault(case, []).append({"errors": errors(ws, run["change"], size)})
    out: dict[str, Any] = {}
    for case, parts in per_case.items():
        out[case] = {
            part: {
                k: round(statistics.median(p["errors"][part][k] for p in parts), 4)
                for k in ("accuracy_mae", "accuracy_bias", "auc_mae", "auc_bias")
            }
            for part in ("before", "after")
            if part in parts[0]["errors"]
        }
    return {
        "version": found["nannyml"],
        "seconds": round(found["seconds"], 1),
        "us_per_row": round(found["us_per_row"], 2),
        "cases": out,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {}
    folder = Path(tempfile.mkdtemp(prefix="pe-nannyml-"))
    keys: dict[str, tuple[str, int]] = {}
    for seed in range(args.seeds):
        credit = [
            (s, streams.credit_reference(seed, args.reference))
            for s in streams.credit_streams(seed, args.before, args.after)
        ]
        agrawal, ref = streams.agrawal_streams(seed, args.before, args.agrawal_after, args.reference)
        for k, (s, reference) in enumerate(credit + [(a, ref) for a in agrawal]):
            runs.setdefault(s.name, []).append({**bench_stream(s, args.window), "change": s.change})
            if args.nannyml:
                keys[f"{k:02d}-{seed:03d}"] = (s.name, seed)
                nanny.write_case(
                    folder,
                    f"{k:02d}-{seed:03d}",
                    (reference.probability, reference.truth),
                    (s.probability, s.truth),
                )
        print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    result: dict[str, Any] = {
        "window": args.window,
        "before": args.before,
        "after": args.after,
        "agrawal_after": args.agrawal_after,
        "delays": DELAYS,
        "estimator_defaults": {
            k: getattr(PerformanceEstimator(), k)
            for k in (
                "window_size",
                "windows_kept",
                "min_labelled",
                "miss_z",
                "misses_to_suspect",
                "drop_limit",
                "drop_z",
            )
        },
        "cases": summarise(runs),
    }
    print(json.dumps(result["cases"], default=str), flush=True)
    result["stationary"] = bench_stationary(args.seeds, args.stationary, args.window)
    print(json.dumps(result["stationary"]), flush=True)
    result["cost"] = bench_cost(args.cost_rows, args.window)
    print(json.dumps(result["cost"]), flush=True)
    if args.nannyml:
        result["nannyml"] = nannyml_baseline(args, folder, keys, runs)
        print(json.dumps(result["nannyml"]), flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def nannyml_baseline(
    args: argparse.Namespace,
    folder: Path,
    keys: dict[str, tuple[str, int]],
    runs: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    import subprocess

    venv = Path(args.nannyml_venv)
    started = time.perf_counter()
    try:
        subprocess.run([str(ROOT / "scripts" / "install-nannyml.sh"), str(venv)], check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as error:
        return {"skipped": f"install failed: {error!r}"}
    installed = time.perf_counter() - started
    try:
        found = nanny.run_nannyml(venv, folder, args.window)
    except (subprocess.SubprocessError, OSError) as error:
        return {"skipped": f"run failed: {error!r}"}
    return {**nannyml_errors(found, keys, runs, args.window), "install_or_check_seconds": round(installed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--before", type=int, default=5000)
    parser.add_argument("--after", type=int, default=5000)
    parser.add_argument("--agrawal-after", type=int, default=12_000)
    parser.add_argument("--reference", type=int, default=5000, help="NannyML's labelled reference rows")
    parser.add_argument("--stationary", type=int, default=100_000, help="stationary rows per seed")
    parser.add_argument("--cost-rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 30 s")
    parser.add_argument("--nannyml", action="store_true", help="NannyML's CBPE in its own venv as well")
    parser.add_argument("--nannyml-venv", default=str(ROOT / ".local" / "venvs" / "nannyml"))
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.before, args.after, args.agrawal_after = 2, 2500, 2500, 3000
        args.stationary, args.cost_rows, args.reference = 20_000, 20_000, 2000
    result = run(args)
    flags = (
        "--quick"
        if args.quick
        else (
            f"--seeds {args.seeds} --window {args.window} --before {args.before} --after {args.after} "
            f"--agrawal-after {args.agrawal_after} --stationary {args.stationary} "
            f"--cost-rows {args.cost_rows}"
        )
    )
    result["command"] = f".venv/bin/python -m bench.performance_estimation {flags}" + (
        " --nannyml" if args.nannyml else ""
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"{result['seconds']} s; results in {RESULTS}")


if __name__ == "__main__":
    main()
