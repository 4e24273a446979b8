"""The replay's service process (`mlops replay`, infra/replay_cli.py): started as `python -m
services.<name>` with its settings pointed at the replay (fresh group, state folder, plan), followed
through its group's committed offsets until the window's end, then stopped with SIGTERM, which makes
its broker write the report of withheld events (servicekit/replay.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from infra.processes import free_port
from infra.replay_window import ReplayKafka, Window
from servicekit.replay import ReplayPlan

POLL_S = 0.25
PROGRESS_S = 1.0
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ProcessRun:
    """How the process went: `first` is when its first records were committed (its start-up is behind
    it), None if it exited before the window's end; `returncode` is its exit code."""

    started: float
    ended: float
    first: float | None
    returncode: int | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def run_replay_process(
    service: str, bootstrap: str, window: Window, env: dict[str, str], log_path: Path
) -> ProcessRun:
    """Start the service's process (its logs to `log_path`, out of the operator's way), follow it to
    the window's end, stop it."""
    started = time.monotonic()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"], stdout=log, stderr=log, env=env
        )
        try:
            first = asyncio.run(follow(bootstrap, window, process))
        finally:
            stop(process)
    return ProcessRun(started, time.monotonic(), first, process.returncode)


async def follow(bootstrap: str, window: Window, process: subprocess.Popen[bytes]) -> float | None:
    """Wait until every group committed up to the window's end, printing progress (about once a second).
    The time the first records were committed (the service's start-up is behind it), None if the
    process ended first; an empty window is done at once."""
    total, printed, shown = window.records, -1, 0.0
    first: float | None = None
    async with ReplayKafka(bootstrap) as kafka:
        while True:
            done = window.done(await kafka.committed(window))
            if first is None and (done or not total):
                first = time.monotonic()
            if done != printed and (done >= total or time.monotonic() - shown >= PROGRESS_S):
                print(f"  {done}/{total} records", file=sys.stderr)
                printed, shown = done, time.monotonic()
            if done >= total and first is not None:
                return first
            if process.poll() is not None:
                return None
            await asyncio.sleep(POLL_S)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM: the service stops its broker, which writes the replay's report."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def replay_env(
    prefix: str, fresh: dict[str, str], mlflow_uri: str, bootstrap: str, group: str, state: Path,
    plan: ReplayPlan,
) -> dict[str, str]:  # fmt: skip
    """This process's environment, with the service's settings pointed at the replay: `prefix` is the
    service's settings prefix, `fresh` the settings that would otherwise point at the live state."""
    env = dict(os.environ)
    for name in ("AUDIT_DATABASE_APP_ROLE", "AUDIT_SIGNING_KEY_FILE", "AUDIT_SUBJECT_SECRET_FILE"):
        env.pop(name, None)  # the fresh store is SQLite with keys of its own
    env.update({
        "MLOPS_STATE_DIR": str(state), "MLOPS_FEAST_REPO": str(state / "feast"),
        "MLOPS_FEAST_ONLINE_STORE": "{}",  # the rebuilt online store: SQLite in the replay's folder
        "MLFLOW_TRACKING_URI": mlflow_uri, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        f"{prefix}GROUP_ID": group, f"{prefix}HTTP_HOST": "127.0.0.1",
        f"{prefix}HTTP_PORT": str(free_port()), "MLOPS_REPLAY": plan.model_dump_json(), **fresh,
    })  # fmt: skip
    return env


def withheld_counts(plan: ReplayPlan) -> dict[str, int]:
    """The withheld-event counts the process wrote at its end ({} if it wrote none)."""
    if plan.report is None or not plan.report.is_file():
        return {}
    return dict(json.loads(plan.report.read_text()).get("withheld", {}))
