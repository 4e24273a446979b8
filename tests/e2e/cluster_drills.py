"""The drills of test_cluster_profile.py for the services that keep state of their own: training (two
instances, a claim per request) and drift (one active instance, one standby). Each kills an instance
with SIGKILL at the worst moment and checks, from the bus and the services' own state, that the work
it held is done once by the other."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from contracts.topics import MODEL_PROMOTED, MODEL_REJECTED, MODEL_TRAINED, RECORDS_CLEAN
from tests.e2e.cluster_reads import caused_by, events_on
from tests.e2e.cluster_stack import finished, stream
from tests.e2e.stack import api, wait_for
from tests.e2e.test_cli import mlops

TRAINING = ("training", "training-2")
DRIFT = ("drift", "drift-2")
WATCHED = "credit_amount"  # a numeric feature drift watches: one update per clean record


def _log(env: dict[str, str], instance: str) -> str:
    return (Path(env["MLOPS_STATE_DIR"]) / "logs" / f"{instance}.log").read_text()


def _other(pair: tuple[str, str], one: str) -> str:
    return pair[1] if one == pair[0] else pair[0]


# -- training ---------------------------------------------------------------------------------------
def claimer(env: dict[str, str], request_id: str) -> str | None:
    """The training instance whose log says it claimed this request, if one has."""
    line = f"training request {request_id}: claimed by this instance"
    return next((name for name in TRAINING if line in _log(env, name)), None)


def takeover_line(env: dict[str, str], instance: str, request_id: str) -> str | None:
    """The instance's log line saying it took this request's run over from an expired claim."""
    wanted = f"training request {request_id}: took over the claim of "
    return next((line for line in _log(env, instance).splitlines() if wanted in line), None)


def run_saved(env: dict[str, str], request_id: str) -> bool:
    """Is the run's outcome in the run ledger (read-only, beside the running services)?"""
    path = Path(env["MLOPS_STATE_DIR"]) / "training" / "training.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("SELECT 1 FROM runs WHERE request_id = ?", (request_id,)).fetchone() is not None


def events_caused(bootstrap: str, request_id: str) -> dict[str, list[dict[str, Any]]]:
    """The request's ModelTrained, and its decision (ModelPromoted or ModelRejected), by type."""
    found = asyncio.run(caused_by(bootstrap, [MODEL_TRAINED, MODEL_PROMOTED, MODEL_REJECTED], request_id))
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in found:
        by_type.setdefault(str(event["event_type"]), []).append(event)
    return by_type


def training_takeover(env: dict[str, str], status: dict[str, dict[str, Any]], bootstrap: str) -> None:
    """Kill the training instance running a request, mid-run: the other runs it, and it is decided once."""
    produce = ("produce", "--rows", "600", "--rate", "0", "--label-delay-s", "0.2", "--follow")
    produced = mlops(*produce, env=env, timeout=300)  # applications and labels to learn from
    assert produced.returncode == 0, produced.stderr
    with api(env, "training", "ops") as ops:
        request = ops.post("/train", json={"reason": "manual"}).json()["event_id"]
    runner = wait_for(lambda: claimer(env, request), 120, "an instance to claim the request", every_s=0.05)
    os.kill(int(status[runner]["pid"]), signal.SIGKILL)  # mid-run: no outcome saved or published yet
    assert not run_saved(env, request) and not events_caused(bootstrap, request)
    survivor = _other(TRAINING, runner)
    with api(env, survivor, "ops") as ops:  # the partition moved; the dead claim expired; it ran it
        outcome = f"/requests/{request}"
        answer = wait_for(lambda: (r := ops.get(outcome)).status_code == 200 and r, 240, "its outcome")
    assert answer.json()["request_id"] == request
    taken = takeover_line(env, survivor, request)
    assert taken is not None and f":{status[runner]['pid']}:" in taken, taken  # from the killed process
    events = events_caused(bootstrap, request)
    decided = events.get("ModelPromoted", []) + events.get("ModelRejected", [])
    assert len(decided) == 1 and len(events.get("ModelTrained", [])) <= 1, events  # one decision, once
    promoted = answer.json()["status"] == "promoted"
    assert decided[0]["event_type"] == ("ModelPromoted" if promoted else "ModelRejected")


# -- drift ------------------------------------------------------------------------------------------
def role(status: dict[str, dict[str, Any]], instance: str) -> str | None:
    """What an instance's open `/ready` says it is: active, standby (or nothing, if it is down)."""
    try:
        answer = httpx.get(f"{status[instance]['url']}/ready", timeout=5).json()
    except httpx.HTTPError:
        return None
    return answer.get("role")


def records_handled(env: dict[str, str]) -> int:
    """Clean records the drift state has handled (its stored offsets: what every instance resumes from)."""
    path = Path(env["MLOPS_STATE_DIR"]) / "drift" / "drift.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        row = db.execute("SELECT COALESCE(SUM(next), 0) FROM offsets WHERE topic = ?", (RECORDS_CLEAN,))
        return int(row.fetchone()[0])


def updates(env: dict[str, str], instance: str) -> int:
    """How many values of the watched feature the instance's detectors have seen (GET /detectors)."""
    with api(env, instance, "ops") as ops:
        return int(ops.get(f"/detectors/data:{WATCHED}").json()["updates"])


def watched_values(bootstrap: str) -> int:
    """Clean records (Kafka records, as drift counts them) carrying a numeric value of the feature."""
    found = asyncio.run(events_on(bootstrap, [RECORDS_CLEAN]))
    return sum(isinstance(e["payload"]["record"].get(WATCHED), int | float) for e in found)


def drift_takeover(env: dict[str, str], status: dict[str, dict[str, Any]], bootstrap: str) -> None:
    """Kill the active drift instance mid-stream: the standby takes the lease and the watch over, and
    its detectors end up having seen every clean record once."""
    active = wait_for(lambda: next((i for i in DRIFT if role(status, i) == "active"), None), 60, "an active")
    standby = _other(DRIFT, active)
    assert role(status, standby) == "standby"
    before = records_handled(env)
    producing = stream(env)
    wait_for(lambda: records_handled(env) - before >= 300, 180, "drift to handle the first records")
    os.kill(int(status[active]["pid"]), signal.SIGKILL)
    wait_for(lambda: role(status, standby) == "active", 60, f"{standby} to take the lease")
    finished(producing)  # every record clean or rejected, once
    expected = watched_values(bootstrap)
    try:
        wait_for(lambda: updates(env, standby) >= expected, 240, f"{expected} values seen")
    finally:
        seen = updates(env, standby)
    assert seen == expected, f"{seen} values seen of {expected} clean records: none lost, none twice"
    assert "this drift instance is active now" in _log(env, standby)
