"""`make demo` again and again from an empty state: does the main job close every time?

Each run: `make down`, the state folder removed, `make demo`; its exit code, duration and the loop's
figures (`<state>/demo/closed-loop.json`) are collected, with every model verdict the loop saw.
Results: bench/results/demo_repeat.json (not committed) and a Markdown table on stdout.

    .venv/bin/python -m bench.demo_repeat --runs 10 --state /tmp/demo-repeat

The state folder and the ports can be moved with the usual MLOPS_* variables (the stack of a run
is stopped before the next starts). Runs take about 4-5 minutes each on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from infra.settings import REPO_ROOT

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def one_run(state: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    subprocess.run(["make", "down"], cwd=REPO_ROOT, env=env, capture_output=True, check=False)
    shutil.rmtree(state, ignore_errors=True)
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(["make", "demo"], cwd=REPO_ROOT, env=env, stdout=out, stderr=out, check=False)
    elapsed = time.monotonic() - started
    loop_file = state / "demo" / "closed-loop.json"
    loop = json.loads(loop_file.read_text()) if loop_file.exists() else {}
    figures = loop.get("figures", {})
    marks = [m for m in loop.get("marks", []) if m.get("kind") in ("promoted", "rejected", "requested")]
    subprocess.run(["make", "down"], cwd=REPO_ROOT, env=env, capture_output=True, check=False)
    return {"exit": code.returncode, "seconds": round(elapsed, 1), "figures": figures, "marks": marks,
            "log": str(log)}  # fmt: skip


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| run | exit | loop closed | accuracy before | right after | first retrain | recovered | "
        "champions | drift -> new champion serving | duration |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, run in enumerate(runs, 1):
        f = run["figures"]

        def pct(key: str, f: dict[str, Any] = f) -> str:
            return f"{f[key]:.1%}" if f.get(key) is not None else "-"

        closed = f.get("new_champion_serving_s_after_drift") is not None and f.get("alarm") is not None
        champions = " -> ".join(
            ["v" + str(f.get("first_version"))] + [f"v{v}" for v in f.get("promoted", [])]
        )
        serving = f.get("new_champion_serving_s_after_drift")
        lines.append(
            f"| {i} | {run['exit']} | {'yes' if closed else 'NO'} | {pct('accuracy_before')} | "
            f"{pct('accuracy_right_after')} | {pct('accuracy_new_version')} | {pct('accuracy_recovered')} | "
            f"{champions} | {serving if serving is not None else '-'} s | {run['seconds']:.0f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--state", type=Path, default=Path("/tmp/demo-repeat"))
    args = parser.parse_args()
    env = dict(os.environ, MLOPS_STATE_DIR=str(args.state))
    logs = args.state.parent / f"{args.state.name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    for i in range(1, args.runs + 1):
        runs.append(one_run(args.state, env, logs / f"run-{i}.log"))
        print(f"run {i}: exit {runs[-1]['exit']} in {runs[-1]['seconds']:.0f} s", flush=True)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / "demo_repeat.json").write_text(json.dumps(runs, indent=1))
    recovered = [r["figures"]["accuracy_recovered"] for r in runs if r["figures"].get("accuracy_recovered")]
    print(table(runs))
    exits = [r["exit"] for r in runs]
    print(f"\n{exits.count(0)} of {len(runs)} runs exited 0; median recovered accuracy "
          f"{statistics.median(recovered):.1%}" if recovered else "")  # fmt: skip


if __name__ == "__main__":
    main()
