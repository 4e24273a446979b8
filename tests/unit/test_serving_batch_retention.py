"""Retention of batch job folders, on real files: a finished job's input is deleted (output and
sha256 stay), only the newest SERVING_BATCH_KEEP_JOBS finished jobs are kept (when a job ends and at
start-up), running jobs never go, and a deleted job's GET is the same 404 as an unknown id, saying why."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.serving.batch_jobs import BatchJobs
from services.serving.batch_retention import prune
from services.serving.domain.batch import PARQUET, read_input, sha256_of
from services.serving.domain.model import ModelSlot
from services.serving.errors import UnknownBatchJob
from tests.unit.test_serving_batch import MODEL, Offers, frame_rows, write
from tests.unit.test_serving_batch_routes import client, parquet
from tests.unit.test_serving_support import FakeRegistry

__all__ = ["client"]  # the fixture, reused


def jobs_keeping(root: Path, keep: int) -> BatchJobs:
    slot = ModelSlot()
    slot.swap(MODEL)
    return BatchJobs(root, slot, FakeRegistry({}, {}), Offers(), "serving", 16, keep_jobs=keep)


async def run_one(jobs: BatchJobs) -> str:
    job_id, job_dir = jobs.new_job_dir()
    write(job_dir, frame_rows(20))
    await jobs.submit(job_id, lambda c: read_input(job_dir / "input", PARQUET, c), None, source="file")
    while jobs.running:
        await asyncio.sleep(0.01)
    return job_id


def saved_job(root: Path, job_id: str, state: str, created_at: str) -> Path:
    job_dir = root / job_id
    job_dir.mkdir(parents=True)
    status = {
        "job_id": job_id, "state": state, "source": "file", "model_name": "m", "model_version": "1",
        "input_sha256": "ab" * 32, "rows": 5, "created_at": created_at,
    }  # fmt: skip
    (job_dir / "status.json").write_text(json.dumps(status))
    (job_dir / "input").write_bytes(b"rows")
    return job_dir


async def test_a_finished_job_keeps_its_output_and_hashes_but_not_its_input(tmp_path: Path) -> None:
    jobs = jobs_keeping(tmp_path, 5)
    job_id = await run_one(jobs)
    done = jobs.status(job_id)
    assert done.state == "done" and not (tmp_path / job_id / "input").exists()
    assert done.output_sha256 == sha256_of(jobs.output(job_id)) and len(done.input_sha256) == 64


async def test_only_the_newest_finished_jobs_are_kept_and_a_deleted_one_says_why(tmp_path: Path) -> None:
    jobs = jobs_keeping(tmp_path, 2)
    first, second, third = [await run_one(jobs) for _ in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([second, third])
    assert jobs.status(second).state == jobs.status(third).state == "done"
    with pytest.raises(UnknownBatchJob, match=r"this batch job was deleted: only the newest 2 finished"):
        jobs.status(first)
    with pytest.raises(UnknownBatchJob, match=r"no batch job with this id; only the newest 2 finished"):
        jobs.status("0" * 32)


def test_at_start_up_old_jobs_go_and_dead_ones_lose_their_input(tmp_path: Path) -> None:
    old = saved_job(tmp_path, "a" * 32, "done", "2026-01-01T00:00:00+00:00")
    failed = saved_job(tmp_path, "b" * 32, "failed", "2026-01-02T00:00:00+00:00")
    dead = saved_job(tmp_path, "c" * 32, "running", "2026-01-03T00:00:00+00:00")
    cut_upload = tmp_path / ("d" * 32)
    cut_upload.mkdir()
    (cut_upload / "input").write_bytes(b"half a file")
    jobs = jobs_keeping(tmp_path, 2)
    assert not old.exists() and not cut_upload.exists()
    assert (failed / "status.json").exists() and not (failed / "input").exists()
    assert not (dead / "input").exists() and jobs.status(dead.name).state == "failed"
    with pytest.raises(UnknownBatchJob, match="was deleted"):
        jobs.status(old.name)


def test_running_jobs_are_never_deleted(tmp_path: Path) -> None:
    running = saved_job(tmp_path, "a" * 32, "running", "2026-01-01T00:00:00+00:00")
    newer = [
        saved_job(tmp_path, "b" * 32, "done", "2026-01-02T00:00:00+00:00"),
        saved_job(tmp_path, "c" * 32, "done", "2026-01-03T00:00:00+00:00"),
    ]
    assert prune(tmp_path, 1, active={running.name}) == [newer[0].name]
    assert running.exists() and not newer[0].exists() and newer[1].exists()


def test_a_deleted_job_answers_404_like_an_unknown_id(client: TestClient) -> None:
    jobs: BatchJobs = client.app.state.batch_jobs  # type: ignore[attr-defined]
    response = client.post("/batch-scores", content=parquet(frame_rows(5)), headers={"Content-Type": PARQUET})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    while client.get(f"/batch-scores/{job_id}").json()["state"] == "running":
        time.sleep(0.01)
    jobs.keep_jobs = 0  # a newer job would push it out; the setting itself is at least 1
    jobs.prune_finished()
    deleted = client.get(f"/batch-scores/{job_id}")
    unknown = client.get(f"/batch-scores/{'0' * 32}")
    assert deleted.status_code == unknown.status_code == 404
    assert deleted.json().keys() == unknown.json().keys()
    assert "this batch job was deleted" in deleted.json()["detail"]
    assert "SERVING_BATCH_KEEP_JOBS" in unknown.json()["detail"]
