"""A new state folder's Label Studio start: from the migrated template (infra/label_studio_db.py)
against Label Studio migrating its own database, in the same run.

Per run, two fresh state folders, one per way, the ways alternating so a busy machine hits both alike:
`LocalLabelStudio.start` timed until `/health` answers, then the server is stopped. The template is
made before the first run (untimed: it is made once per installed version). Reported: each run's
seconds and the medians, and their ratio. Nothing here asserts on timings.

    .venv/bin/python -m bench.label_studio_start [--runs 3] [--port 19995]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from infra.label_studio import QUIET_SETTINGS, LocalLabelStudio, write_credentials
from infra.label_studio_db import migrated_template
from infra.processes import wait_for_exit
from infra.settings import InfraSettings


def start_s(state: Path, port: int, seed: bool) -> float:
    settings = InfraSettings(state_dir=state, label_studio_port=port)
    write_credentials(settings.secrets_dir)
    started = time.perf_counter()
    pid = LocalLabelStudio(settings).start(timeout_s=600, seed=seed)
    elapsed = time.perf_counter() - started
    os.killpg(pid, signal.SIGTERM)
    wait_for_exit(pid, 30)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=19995)
    args = parser.parse_args()
    if migrated_template(LocalLabelStudio(InfraSettings()).venv, QUIET_SETTINGS) is None:
        raise SystemExit("Label Studio is not installed: scripts/install-label-studio.sh")
    seeded: list[float] = []
    migrating: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            ways = [(True, seeded), (False, migrating)]
            for seed, times in ways if run % 2 == 0 else reversed(ways):
                times.append(round(start_s(Path(scratch) / f"{run}-{seed}", args.port, seed), 1))
            print(json.dumps({"run": run, "seeded_s": seeded[-1], "migrating_s": migrating[-1]}), flush=True)
    medians = {"seeded_s": statistics.median(seeded), "migrating_s": statistics.median(migrating)}
    print(json.dumps({"median": medians | {"ratio": round(medians["migrating_s"] / medians["seeded_s"], 1)}}))


if __name__ == "__main__":
    main()
