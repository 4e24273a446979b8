"""Retention of batch job folders under <service_dir>/batch/: only the newest `keep` finished jobs
(done or failed) are kept; older ones are deleted, output included. A count rather than an age,
because it bounds the disk a busy service uses (about `keep` outputs), and a quiet one never loses a
result its caller has not fetched yet. Jobs this process runs are never deleted; a folder left
"running" by a process that died reads as failed (`BatchJobs.status`), so it counts as finished."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger(__name__)

INPUT = "input"
STATUS = "status.json"


def finished_jobs(root: Path, active: Collection[str]) -> list[tuple[str, str]]:
    """(created_at, job_id) of every job folder with a status, oldest first, except `active` ones."""
    found: list[tuple[str, str]] = []
    for status_path in root.glob(f"*/{STATUS}"):
        job_id = status_path.parent.name
        if job_id in active:
            continue
        try:
            created_at = str(json.loads(status_path.read_text())["created_at"])
        except (OSError, ValueError, KeyError, TypeError):
            created_at = ""  # unreadable: oldest, so it goes first
        found.append((created_at, job_id))
    return sorted(found)


def prune(root: Path, keep: int, active: Collection[str]) -> list[str]:
    """Delete the folders of finished jobs beyond the newest `keep`; the ids deleted, oldest first."""
    finished = finished_jobs(root, active)
    doomed = [job_id for _, job_id in finished[: max(len(finished) - keep, 0)]]
    for job_id in doomed:
        shutil.rmtree(root / job_id, ignore_errors=True)
    if doomed:
        log.info("deleted %d batch job folder(s) beyond the newest %d finished", len(doomed), keep)
    return doomed


def remove_leftovers(root: Path) -> None:
    """At start-up, before any job runs here: folders without a status (an upload cut by a crash) are
    deleted, and inputs of jobs a dead process left running (they are failed, never resumed)."""
    if not root.is_dir():
        return
    for job_dir in root.iterdir():
        if not job_dir.is_dir():
            continue
        if not (job_dir / STATUS).exists():
            shutil.rmtree(job_dir, ignore_errors=True)
        else:
            (job_dir / INPUT).unlink(missing_ok=True)
            (job_dir / ".scores.parquet.partial").unlink(missing_ok=True)
