"""The validation gate's error rates, on candidates whose true quality is known (issue 13).

Each repetition trains, from a population with a known label law (bench/gate_population.py), a
champion and four candidates: `equal` (same recipe, independent data), `worse` (20 % of its labels
flipped), `better` (the full recipe against a champion trained on 150 rows) and `biased` (women's
good labels flipped to bad with p = 0.3, sex given as an input). Their true AUC, log loss and |DPD|
by sex are measured on 20,000 fresh applicants. Then, for each holdout size, a fresh holdout is drawn
and BOTH gates decide every candidate on that same holdout: the paired-bootstrap gate (three
verdicts) and the fixed-threshold gate (point estimates; promote or reject).

Rates, each with its Wilson 95 % interval over the repetitions:
- false rejection: `equal` rejected; false promotion: `worse` promoted;
- `better` promoted; `biased` blocked (not promoted: rejected or not enough evidence).

    .venv/bin/python -m bench.gate_error_rates [--repetitions 150] [--sizes 300,600,1200]
        [--bootstrap-samples 1000] [--workers 2] [--seed 13]

Seeded and deterministic: repetition r draws from SeedSequence([seed, r]) whatever the worker.
Results: bench/results/gate_error_rates.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.gate_population import KINDS, Model, candidates, population
from contracts.events import GateCheck
from services.training.domain.gate import decide
from services.training.domain.model import evaluate
from services.training.domain.policy import GatePolicy

RESULTS = Path(__file__).resolve().parent / "results" / "gate_error_rates.json"
GATES = ("paired_bootstrap", "fixed_threshold")
OUTCOMES = ("promote", "reject", "not_enough_evidence")
TRUTH_ROWS = 20_000
TRUTH_SEED = 2026
Z95 = 1.959964


def gate_policies(bootstrap_samples: int) -> dict[str, GatePolicy]:
    base = GatePolicy().model_copy(update={"bootstrap_samples": bootstrap_samples})
    return {gate: base.model_copy(update={"method": gate}) for gate in GATES}


@cache
def truth_sample() -> pd.DataFrame:
    return population().draw(TRUTH_ROWS, np.random.default_rng(TRUTH_SEED))


def true_quality(model: Model, policy: GatePolicy) -> dict[str, float]:
    """AUC, log loss and |DPD| by sex against the population, on a large fresh sample."""
    sample = truth_sample()
    metrics = evaluate(sample, model.p_bad(sample), policy).metrics
    return {"auc": metrics["auc"], "log_loss": metrics["log_loss"], "dpd_sex": abs(metrics["dpd_sex"])}


def judged(check: GateCheck) -> str | None:
    """A check's name and how it went, when it did not pass plainly (None when it did)."""
    outcome = check.outcome or ("pass" if check.passed else "fail")
    return None if outcome == "pass" else f"{check.name}:{outcome}"


def repetition(rep: int, seed: int, sizes: Sequence[int], bootstrap_samples: int) -> dict[str, Any]:
    """One repetition: fresh models, their true quality, and both gates' verdicts at every size."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, rep]))
    policies = gate_policies(bootstrap_samples)
    pairs = candidates(policies["fixed_threshold"], rng)
    models = {id(m): m for pair in pairs.values() for m in pair}
    quality = {key: true_quality(m, policies["fixed_threshold"]) for key, m in models.items()}
    truth = {}
    for kind, (candidate, champion) in pairs.items():
        mine, theirs = quality[id(candidate)], quality[id(champion)]
        gaps = {"auc_gap": mine["auc"] - theirs["auc"], "log_loss_gap": mine["log_loss"] - theirs["log_loss"]}
        truth[kind] = mine | gaps
    verdicts: dict[str, dict[str, dict[str, Any]]] = {}
    for size in sizes:
        holdout = population().draw(size, rng)
        for gate, policy in policies.items():
            scored = {key: evaluate(holdout, m.p_bad(holdout), policy) for key, m in models.items()}
            for kind, (candidate, champion) in pairs.items():
                verdict = decide(scored[id(candidate)], policy, scored[id(champion)], "1")
                failed = [j for j in map(judged, verdict.evidence.checks) if j]
                verdicts.setdefault(str(size), {}).setdefault(gate, {})[kind] = {
                    "outcome": verdict.outcome,
                    "failed": failed,
                }
    return {"rep": rep, "truth": truth, "verdicts": verdicts}


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson score interval at 95 % for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    # at 0 and n the bounds are exactly 0 and 1; computed, they may miss by a rounding error
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def rate(successes: int, n: int) -> dict[str, Any]:
    low, high = wilson(successes, n)
    return {"rate": successes / n if n else None, "low": low, "high": high, "count": successes, "n": n}


HEADLINE = {  # kind -> (what the rate is called, outcomes that count)
    "equal": ("false_rejection", ("reject",)),
    "worse": ("false_promotion", ("promote",)),
    "better": ("promoted", ("promote",)),
    "biased": ("blocked", ("reject", "not_enough_evidence")),
}


def summarise(reps: list[dict[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    n = len(reps)
    cells: dict[str, Any] = {}
    for size in map(str, sizes):
        for gate in GATES:
            for kind in KINDS:
                seen = [r["verdicts"][size][gate][kind] for r in reps]
                counts = Counter(v["outcome"] for v in seen)
                name, counted = HEADLINE[kind]
                cells.setdefault(size, {}).setdefault(gate, {})[kind] = {
                    "outcomes": {o: rate(counts[o], n) for o in OUTCOMES},
                    name: rate(sum(counts[o] for o in counted), n),
                    "failed_checks": dict(Counter(f for v in seen for f in v["failed"]).most_common()),
                }
    truth = {
        kind: {
            key: float(np.mean([r["truth"][kind][key] for r in reps]))
            for key in ("auc", "log_loss", "dpd_sex", "auc_gap", "log_loss_gap")
        }
        for kind in KINDS
    }
    return {"cells": cells, "truth": truth, "targets": targets(cells, sizes)}


def targets(cells: dict[str, Any], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """The issue's targets, per gate: met by the estimate, and met with 95 % confidence."""
    wanted = [(str(s), "equal", "false_rejection", "<=", 0.05) for s in sizes]
    wanted += [("600", "biased", "blocked", ">=", 0.95), ("1200", "better", "promoted", ">=", 0.90)]
    out = []
    for size, kind, name, op, bound in wanted:
        if size not in cells:
            continue
        for gate in GATES:
            r = cells[size][gate][kind][name]
            met = r["rate"] <= bound if op == "<=" else r["rate"] >= bound
            sure = r["high"] <= bound if op == "<=" else r["low"] >= bound
            out.append(
                {"gate": gate, "labels": int(size), "rate": f"{kind} {name}", "target": f"{op} {bound}"}
                | {"estimate": r["rate"], "low": r["low"], "high": r["high"], "met": met, "met_at_95": sure}
            )
    return out


def fmt(r: dict[str, Any]) -> str:
    return f"{r['rate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"


def table(summary: dict[str, Any], sizes: Sequence[int]) -> str:
    lines = [
        "| labels | gate | candidate | headline rate [95 % CI] | promote | reject | not enough evidence |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size in map(str, sizes):
        for gate in GATES:
            for kind in KINDS:
                cell = summary["cells"][size][gate][kind]
                name = HEADLINE[kind][0].replace("_", " ")
                shares = " | ".join(f"{cell['outcomes'][o]['rate']:.3f}" for o in OUTCOMES)
                lines.append(
                    f"| {size} | {gate} | {kind} | {name} {fmt(cell[HEADLINE[kind][0]])} | {shares} |"
                )
    return "\n".join(lines)


def run(
    repetitions: int, sizes: Sequence[int], bootstrap_samples: int, workers: int, seed: int
) -> dict[str, Any]:
    job = partial(repetition, seed=seed, sizes=sizes, bootstrap_samples=bootstrap_samples)
    if workers <= 1:
        reps = [job(rep) for rep in range(repetitions)]
    else:
        with ProcessPoolExecutor(workers) as pool:
            reps = list(pool.map(job, range(repetitions)))
    return {
        "repetitions": repetitions,
        "sizes": list(sizes),
        "bootstrap_samples": bootstrap_samples,
        "seed": seed,
    } | summarise(reps, sizes)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repetitions", type=int, default=150)
    parser.add_argument("--sizes", default="300,600,1200")
    parser.add_argument("--bootstrap-samples", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.perf_counter()
    results = run(args.repetitions, sizes, args.bootstrap_samples, args.workers, args.seed)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    print(table(results, sizes))
    print(json.dumps({"truth": results["truth"]}, indent=1))
    for t in results["targets"]:
        interval = f"{t['estimate']:.3f} [{t['low']:.3f}, {t['high']:.3f}]"
        print(f"{t['gate']:16s} {t['labels']:5d} {t['rate']:24s} {t['target']:8s} {interval}", end=" ")
        print(f"met={t['met']} met_at_95={t['met_at_95']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['seconds']} s; {args.repetitions} repetitions; results in {RESULTS}")
    return results


if __name__ == "__main__":
    main()
