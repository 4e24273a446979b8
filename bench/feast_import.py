"""What a process pays to import Feast: with its classes left uninstrumented (what every first-party
entry point now does, feature_repo/quiet_typeguard.py) against typeguard instrumenting them (Feast
imported alone), in the same run.

Per run, one fresh interpreter each way, the ways alternating so a busy machine hits both alike; the
child's CPU (user + system) and wall time from the kernel (`os.wait4`). Reported: each run's figures,
then the medians and the ratio of the medians. Nothing here asserts on timings.

    .venv/bin/python -m bench.feast_import [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from infra.settings import REPO_ROOT

WAYS = {
    "uninstrumented": "import feature_repo, feast",  # as the services, the CLI and the tests start
    "instrumented": "import feast",  # Feast alone: typeguard instruments its classes
}


def run_once(code: str) -> tuple[float, float]:
    """CPU seconds and wall seconds of one interpreter that runs `code`."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{code!r} exited {child.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    cpu: dict[str, list[float]] = {way: [] for way in WAYS}
    wall: dict[str, list[float]] = {way: [] for way in WAYS}
    run_once(WAYS["uninstrumented"])  # warm the page cache for both (same files)
    for run in range(args.runs):
        order = list(WAYS) if run % 2 == 0 else list(reversed(WAYS))
        for way in order:
            spent, took = run_once(WAYS[way])
            cpu[way].append(round(spent, 2))
            wall[way].append(round(took, 2))
        print(json.dumps({"run": run, "cpu_s": {w: cpu[w][-1] for w in WAYS}}), flush=True)
    medians = {w: {"cpu_s": statistics.median(cpu[w]), "wall_s": statistics.median(wall[w])} for w in WAYS}
    ratio = medians["uninstrumented"]["cpu_s"] / medians["instrumented"]["cpu_s"]
    print(json.dumps({"median": medians, "cpu_ratio_uninstrumented_to_instrumented": round(ratio, 2)}))


if __name__ == "__main__":
    main()
