"""What the training drill of test_cluster_profile.py reads: which instance claimed a request (its
log), whether a run's outcome is saved (the state both instances share), and the decisions the
request caused on the bus."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from contracts.topics import MODEL_PROMOTED, MODEL_REJECTED, MODEL_TRAINED
from tests.e2e.cluster_reads import caused_by

INSTANCES = ("training", "training-2")


def _log(env: dict[str, str], instance: str) -> str:
    return (Path(env["MLOPS_STATE_DIR"]) / "logs" / f"{instance}.log").read_text()


def claimer(env: dict[str, str], request_id: str) -> str | None:
    """The training instance whose log says it claimed this request, if one has."""
    line = f"training request {request_id}: claimed by this instance"
    return next((name for name in INSTANCES if line in _log(env, name)), None)


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
