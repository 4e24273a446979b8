"""Use case: batch scoring jobs. The input is checked before the job is accepted (so bad input is a
4xx, never a failed job), then scored chunk by chunk in one worker thread by the model object
/predict uses, written to Parquet under <service_dir>/batch/<job_id>/, and announced by one
BatchScored event through the outbox. The event loop only waits, so /predict keeps answering during
a batch (the pure-Python scorer holds the GIL; requests get it at the interpreter's switch interval).
The thread alone touches the Parquet writer: a job stopped at shutdown is told through an Event and
closes its writer itself between chunks (closing it from the loop while the thread wrote crashed
the process). When a job ends its input is deleted (the output and both sha256 stay) and the oldest
finished jobs beyond `keep_jobs` are deleted (batch_retention.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from contracts.envelope import Event
from contracts.events import BatchScored, BatchScoredPayload
from services.serving.batch_retention import INPUT, STATUS, prune, remove_leftovers
from services.serving.domain.batch import (
    BadInput,
    chunks,
    output_batch,
    output_schema,
    score_chunk,
    sha256_of,
)
from services.serving.domain.model import Column, LoadedModel, ModelSlot
from services.serving.errors import (
    BadBatchInput,
    BatchBusy,
    DependencyUnavailable,
    ModelLoadError,
    NoChampion,
    UnknownBatchJob,
    UnknownModelVersion,
)
from services.serving.handlers import Outbox
from services.serving.reloader import ModelRegistry

log = logging.getLogger(__name__)

LoadTable = Callable[[Sequence[Column]], pa.Table]  # blocking; raises BadInput


@dataclass
class JobStatus:
    job_id: str
    state: Literal["running", "done", "failed"]
    source: Literal["file", "offline_store"]
    model_name: str
    model_version: str
    input_sha256: str
    rows: int
    created_at: str
    content_type: str | None = None
    start: str | None = None
    end: str | None = None
    rows_scored: int = 0
    rows_per_s: float | None = None
    duration_s: float | None = None
    output_sha256: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Announcement:
    """What the outbox publishes (it takes anything with `events()`)."""

    event: Event[Any]

    def events(self) -> list[Event[Any]]:
        return [self.event]


class BatchJobs:
    def __init__(
        self, root: Path, slot: ModelSlot, registry: ModelRegistry, outbox: Outbox, producer: str,
        chunk_rows: int, max_running: int = 2, keep_jobs: int = 20,
    ) -> None:  # fmt: skip
        self.root = root
        self.slot = slot
        self.registry = registry
        self.outbox = outbox
        self.producer = producer
        self.chunk_rows = chunk_rows
        self.max_running = max_running
        self.keep_jobs = keep_jobs
        self._jobs: dict[str, JobStatus] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._named: dict[str, LoadedModel] = {}  # named versions loaded for batches (a few, kept)
        self._active: set[str] = set()  # jobs whose task runs: never pruned
        self._pruned: set[str] = set()  # ids this process deleted, so their 404 says why
        remove_leftovers(root)  # no job runs here yet
        self.prune_finished()

    @property
    def running(self) -> int:
        return len(self._tasks)

    def ensure_capacity(self) -> None:
        """BatchBusy (429) when `max_running` jobs run: each holds its input table in memory."""
        if self.running >= self.max_running:
            raise BatchBusy(f"{self.running} batch jobs running, at most {self.max_running}; retry later")

    def new_job_dir(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        path = self.root / job_id
        path.mkdir(parents=True)
        return job_id, path

    async def submit(self, job_id: str, load: LoadTable, version: str | None, **source: Any) -> JobStatus:
        """Resolve the model, read and check the input (in a thread), start the job; on bad input the
        job's folder is removed and BadBatchInput (422) raised."""
        job_dir = self.root / job_id
        try:
            model = await self._model(version)
            table, sha = await asyncio.to_thread(self._load, load, model.columns, job_dir)
        except BadInput as exc:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise BadBatchInput(str(exc)) from None
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        status = JobStatus(
            job_id, "running", model_name=model.name, model_version=model.version, input_sha256=sha,
            rows=table.num_rows, created_at=datetime.now(UTC).isoformat(), **source,
        )  # fmt: skip
        self._jobs[job_id] = status
        _save(job_dir, status)
        task = asyncio.create_task(self._run(status, model, table), name=f"batch-{job_id}")
        self._tasks.add(task)
        self._active.add(job_id)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._active.discard(job_id))
        return status

    def status(self, job_id: str) -> JobStatus:
        if job_id in self._jobs:
            return self._jobs[job_id]
        saved = self.root / job_id / STATUS
        if not saved.exists():
            kept = f"only the newest {self.keep_jobs} finished jobs are kept (SERVING_BATCH_KEEP_JOBS)"
            if job_id in self._pruned:
                raise UnknownBatchJob(f"this batch job was deleted: {kept}")
            raise UnknownBatchJob(f"no batch job with this id; {kept}")
        status = JobStatus(**json.loads(saved.read_text()))
        if status.state == "running":  # not this process's: it died before the job finished
            status.state, status.reason = "failed", "the service restarted before the job finished"
        return status

    def output(self, job_id: str) -> Path:
        return self.root / job_id / "scores.parquet"

    async def close(self) -> None:
        """Stop running jobs (marked failed on disk; a restart does not resume them)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _model(self, version: str | None) -> LoadedModel:
        champion = self.slot.champion
        if version is None:
            if champion is None:
                raise NoChampion("no champion model is loaded yet; name a version or retry later")
            return champion
        canary = self.slot.canary[0] if self.slot.canary is not None else None
        for model in (champion, self.slot.challenger, canary):  # already loaded: no registry call
            if model is not None and model.version == version:
                return model
        if version not in self._named:
            try:
                loaded = await asyncio.to_thread(self.registry.load, version, "batch")
            except ModelLoadError as exc:
                raise UnknownModelVersion(f"model version {version} could not be loaded: {exc}") from None
            except Exception as exc:
                raise DependencyUnavailable(f"the model registry failed: {type(exc).__name__}") from None
            if len(self._named) >= 2:
                self._named.pop(next(iter(self._named)))
            self._named[version] = loaded
        return self._named[version]

    @staticmethod
    def _load(load: LoadTable, columns: Sequence[Column], job_dir: Path) -> tuple[pa.Table, str]:
        table = load(columns)
        return table, sha256_of(job_dir / INPUT)

    async def _run(self, status: JobStatus, model: LoadedModel, table: pa.Table) -> None:
        job_dir = self.root / status.job_id
        started = time.perf_counter()
        ids = [name for name in table.column_names if name not in model.feature_names]
        lineage = {"input_sha256": status.input_sha256, "source": status.source, "job_id": status.job_id}
        schema = output_schema(model, ids, lineage)
        partial = job_dir / ".scores.parquet.partial"
        stop = threading.Event()
        try:
            await asyncio.to_thread(self._score_all, status, model, table, schema, partial, stop)
            os.replace(partial, self.output(status.job_id))
            status.output_sha256 = await asyncio.to_thread(sha256_of, self.output(status.job_id))
        except asyncio.CancelledError:
            stop.set()  # the thread ends at its next chunk and closes the writer itself
            self._finish(status, started, failed="the service stopped before the job finished")
            raise
        except BadInput as exc:
            self._finish(status, started, failed=str(exc))
            return
        except Exception as exc:
            log.exception("batch job %s failed", status.job_id)
            self._finish(status, started, failed=f"internal error ({type(exc).__name__}); see the logs")
            return
        self._finish(status, started)
        self.outbox.offer(_Announcement(self._event(status)))
        log.info("batch job %s: %d rows at %.0f rows/s", status.job_id, status.rows, status.rows_per_s)

    def _score_all(
        self, status: JobStatus, model: LoadedModel, table: pa.Table, schema: pa.Schema, partial: Path,
        stop: threading.Event,
    ) -> None:  # fmt: skip
        """In a worker thread: every chunk scored and written, unless `stop` is set first."""
        with pq.ParquetWriter(partial, schema) as writer:
            for chunk in chunks(table, self.chunk_rows):
                if stop.is_set():
                    break
                writer.write_batch(output_batch(model, score_chunk(model, chunk), schema))
                status.rows_scored += chunk.num_rows
        if stop.is_set():
            partial.unlink(missing_ok=True)

    def _finish(self, status: JobStatus, started: float, failed: str | None = None) -> None:
        status.duration_s = time.perf_counter() - started
        status.rows_per_s = status.rows_scored / status.duration_s if status.duration_s > 0 else None
        status.state = "failed" if failed else "done"
        status.reason = failed
        _save(self.root / status.job_id, status)
        (self.root / status.job_id / INPUT).unlink(missing_ok=True)  # scored: the table is in memory
        self.prune_finished(finished=status.job_id)

    def prune_finished(self, finished: str | None = None) -> None:
        """Delete the oldest finished jobs beyond `keep_jobs` (`finished`: the job ending now)."""
        for job_id in prune(self.root, self.keep_jobs, self._active - {finished}):
            self._jobs.pop(job_id, None)
            self._pruned.add(job_id)

    def _event(self, status: JobStatus) -> BatchScored:
        payload = BatchScoredPayload(
            job_id=status.job_id,
            model_name=status.model_name,
            model_version=status.model_version,
            input_sha256=status.input_sha256,
            rows=status.rows,
            source=status.source,
            content_type=status.content_type,
            start=datetime.fromisoformat(status.start) if status.start else None,
            end=datetime.fromisoformat(status.end) if status.end else None,
            output=str(self.output(status.job_id)),
            output_sha256=status.output_sha256 or "",
            duration_s=status.duration_s or 0.0,
        )
        return BatchScored.create(payload, self.producer)


def _save(job_dir: Path, status: JobStatus) -> None:
    partial = job_dir / ".status.json.partial"
    partial.write_text(json.dumps(asdict(status)))
    os.replace(partial, job_dir / STATUS)
