"""The label budget (issue #15): how many annotations uncertainty sampling needs to recover accuracy
after a drift, against random sampling, on the demo's stream.

Per run (seed `--seed` + run; the stream's applicants and the random picks both follow it):

1. The demo's stream (`workbench/demo_data.py`, as `infra/loop.py` drives it): `--pre-drift` new
   applicants, then the drift (default `label_swap`, the demo's: every label inverted) on the next
   `--pool` + `--holdout` applicants.
2. The champion is trained as the training service trains, in process through its own functions:
   `input_features` and `build_pipeline` (logistic regression on standardised numerics and one-hot
   categoricals, the sensitive attributes excluded, C and seed from the shipped policy.yaml), fitted
   on the older 80 % of the pre-drift rows (`time_split` with the policy's `holdout_share`). No
   MLflow, Feast or Kafka: the rows are the ones the feature store would return (`typed`).
3. The champion scores the pool (the "predictions"). Each strategy picks B of them for annotation:
   `uncertainty` the B whose score is nearest the policy's `decision_threshold` (0.5; the tag every
   model version carries, and the score serving compares it with), `random` B uniformly, `mixed` 80 %
   nearest + 20 % random (a queue of uncertain cases with a random share; the annotation service's
   policy, which this benchmark informed, sends 30 % of a drifted window at random). The model is
   retrained, on the same picks, in two ways (`--windows`): on the pre-drift training rows + the B
   labelled rows (`history`), and on the B alone (`since_change`: what the shipped policy's
   `train_since_change: true` does after a drift), and scored on the drifted holdout.
4. References: "no labels" (the champion on the holdout) and "ceiling" (retrained with the whole
   pool labelled). RECOVERED: accuracy >= no_labels + 0.9 * (ceiling - no_labels), each run against
   its own two references; the budget to recover is the smallest budget that does (0 when the
   ceiling is no better than the champion: nothing to recover).

Picks that hold one class cannot be fitted (the service refuses the run): the champion keeps
serving and that budget scores "no labels". The service's own floor (`min_labels: 200`) is not
applied: the benchmark measures what the labels can teach, not the policy's waits.

Sizes: 2000 pre-drift rows (the demo's first champion learns from 2000 streamed rows); a pool of 3000
(the largest budget, 800, is then a quarter of it, so the nearest 800 are still a choice); a holdout
of 2000 (an accuracy's standard error is about 1 point there).

    .venv/bin/python -m bench.label_budget [--runs 5] [--budgets 25,50,100,200,400,800] [--seed 0]
        [--drift label_swap|prior_shift|...] [--windows history,since_change]

Prints a Markdown table per window; the figures go to bench/results/label_budget-<drift>.json.
About 15 s with the defaults on 2 shared cores (the stream's PII draws and ~20 fits a run and window).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.label_budget_core import RECOVERED_RULE, STRATEGIES, RunData, RunResult, run_once
from feature_repo.names import ENTITY_KEY, EVENT_TIME, FEATURES
from services.training.domain.dataset import LABEL, label_value, time_split, typed
from services.training.domain.model import input_features
from services.training.domain.policy import GatePolicy, load_policy
from services.training.settings import DEFAULT_POLICY
from workbench.demo_data import DRIFT_KINDS, ApplicationStream, DriftSpec

RESULTS = Path(__file__).resolve().parent / "results"
WINDOWS = {  # what a retrain learns from, besides the annotated drifted rows
    "history": "the pre-drift training rows + the annotated ones",
    "since_change": "the annotated rows only (the shipped policy's train_since_change)",
}


def stream_frame(drift: str, seed: int, pre_drift: int, rows: int) -> pd.DataFrame:
    """`rows` applicants of the demo's stream as typed feature rows with their label (1 = bad)."""
    spec = DriftSpec(drift, at=pre_drift)
    apps = ApplicationStream(spec, seed=seed, id_prefix=f"budget-{seed}", notes_share=0.0).take(rows)
    frame = pd.DataFrame(
        [
            {ENTITY_KEY: a.record[ENTITY_KEY], EVENT_TIME: a.record[EVENT_TIME]}
            | {name: a.record[name] for name in FEATURES}
            | {LABEL: label_value(a.label)}
            for a in apps
        ]
    )
    return typed(frame)


def run_data(args: argparse.Namespace, policy: GatePolicy, seed: int) -> RunData:
    frame = stream_frame(args.drift, seed, args.pre_drift, args.pre_drift + args.pool + args.holdout)
    train, _ = time_split(frame.iloc[: args.pre_drift], policy.holdout_share)
    drifted = frame.iloc[args.pre_drift :].reset_index(drop=True)
    return RunData(
        pre_drift=train,
        pool=drifted.iloc[: args.pool].reset_index(drop=True),
        holdout=drifted.iloc[args.pool :].reset_index(drop=True),
        inputs=input_features(policy),
        params=policy.model,
        threshold=policy.decision_threshold,
    )


def spread(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "min": min(values), "max": max(values)}


def summarise(results: list[RunResult], budgets: list[int], strategies: list[str]) -> dict[str, Any]:
    """Medians and ranges over runs; a run that never recovers counts as an infinite budget."""
    recover: dict[str, Any] = {}
    for s in strategies:
        found = [r.to_recover(s) for r in results]
        budgets_or_inf = [float("inf") if b is None else float(b) for b in found]
        recover[s] = spread(budgets_or_inf) | {"per_run": found}
    return {
        "no_labels": spread([r.no_labels for r in results]),
        "ceiling": spread([r.ceiling for r in results]),
        "gap": spread([r.ceiling - r.no_labels for r in results]),
        "accuracy": {
            s: {str(b): spread([r.accuracy[s][b] for r in results]) for b in budgets} for s in strategies
        },
        "not_fitted": {s: [r.not_fitted[s] for r in results] for s in strategies},
        "budget_to_recover": recover,
    }


def cell(figure: dict[str, float]) -> str:
    return f"{figure['median']:.3f} [{figure['min']:.3f}, {figure['max']:.3f}]"


def budget_text(value: float, largest: int) -> str:
    return f"> {largest}" if value == float("inf") else f"{value:g}"


def ratio_text(random: float, uncertainty: float) -> str:
    """Median budget of random over uncertainty: > 1 means uncertainty needs fewer labels."""
    if random == uncertainty == float("inf"):
        return "n/a (neither recovers within the budgets)"
    if uncertainty == float("inf"):
        return "< 1 (uncertainty does not recover within the budgets, random does)"
    if random == float("inf"):
        return "> 1 (random does not recover within the budgets, uncertainty does)"
    return f"{random / uncertainty:.2f}"


def markdown(summary: dict[str, Any], budgets: list[int], strategies: list[str]) -> str:
    lines = [
        "| budget | " + " | ".join(strategies) + " |",
        "| ---: | " + " | ".join("---" for _ in strategies) + " |",
    ]
    for b in budgets:
        lines.append(
            f"| {b} | " + " | ".join(cell(summary["accuracy"][s][str(b)]) for s in strategies) + " |"
        )
    lines.append(f"| no labels (champion) | {cell(summary['no_labels'])} |")
    lines.append(f"| ceiling (whole pool labelled) | {cell(summary['ceiling'])} |")
    lines.append(f"| gap to recover (ceiling - no labels) | {cell(summary['gap'])} |")
    largest = max(budgets)
    lines += ["", f"Recovered: {RECOVERED_RULE}, each run against its own references.", ""]
    for s in strategies:
        r = summary["budget_to_recover"][s]
        runs = ", ".join("-" if b is None else str(b) for b in r["per_run"])
        lines.append(
            f"- {s}: median {budget_text(r['median'], largest)} labels "
            f"[{budget_text(r['min'], largest)}, {budget_text(r['max'], largest)}] (runs: {runs})"
        )
    if {"random", "uncertainty"} <= set(strategies):
        medians = summary["budget_to_recover"]
        ratio = ratio_text(medians["random"]["median"], medians["uncertainty"]["median"])
        lines.append(f"- random / uncertainty (median budgets): {ratio}")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budgets", default="25,50,100,200,400,800")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--drift", default="label_swap", choices=[k for k in DRIFT_KINDS if k != "none"])
    parser.add_argument("--windows", default=",".join(WINDOWS), help=f"comma-separated, of {WINDOWS}")
    parser.add_argument("--pre-drift", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--holdout", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default under bench/results/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    strategies = [s for s in args.strategies.split(",") if s]
    windows = [w for w in args.windows.split(",") if w]
    if unknown := set(windows) - set(WINDOWS) or set(strategies) - set(STRATEGIES):
        raise SystemExit(f"unknown window or strategy: {sorted(unknown)}")
    policy = load_policy(DEFAULT_POLICY)
    report: dict[str, Any] = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "decision_threshold": policy.decision_threshold,
        "recovered_rule": RECOVERED_RULE,
    }
    results: dict[str, list[RunResult]] = {w: [] for w in windows}
    started = time.perf_counter()
    for run in range(args.runs):
        seed = args.seed + run  # the stream's applicants and the random order, the same in every window
        data = run_data(args, policy, seed)
        for window in windows:
            with_history = replace(data, with_history=window == "history")
            results[window].append(run_once(with_history, budgets, strategies, np.random.default_rng(seed)))
    report["seconds"] = round(time.perf_counter() - started, 1)
    for window in windows:
        report[window] = summarise(results[window], budgets, strategies)
        print(f"\n### {args.drift} drift, retrain on {WINDOWS[window]}: {args.runs} runs\n")
        print("Holdout accuracy, median [min, max] over runs.\n")
        print(markdown(report[window], budgets, strategies))
    print(f"\n({report['seconds']} s)")
    out = args.out or RESULTS / f"label_budget-{args.drift}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
