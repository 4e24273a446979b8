"""HTTP entry points of batch scoring (ops role): submit a file or a time range, read a job's status,
download its scores. The upload is streamed to the job's folder (never held whole in memory), then
read, checked and hashed in a worker thread before the 202, so bad input is a 4xx and leaves nothing.
The cap on running jobs is checked when a request arrives (uploads in flight are not counted)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import AwareDatetime, BaseModel, Field, ValidationError, model_validator

from feature_repo.store import FeatureStoreSettings
from servicekit.auth import Principal, Role, require_roles
from servicekit.errors import error_responses
from services.serving.adapters.offline_rows import rows_between
from services.serving.batch_jobs import BatchJobs, JobStatus
from services.serving.domain.batch import CSV, PARQUET, checked, read_input
from services.serving.domain.model import Column
from services.serving.errors import BatchNotDone, BatchTooLarge, UnsupportedMediaType
from services.serving.routes import invalid
from services.serving.settings import ServingSettings

router = APIRouter(tags=["batch scoring"])
Version = Annotated[str | None, Query(pattern=r"^[1-9][0-9]{0,9}$", description="a model version")]
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
_JSON_LIMIT = 64 * 1024


class TimeRange(BaseModel):
    """A time range of the offline store: rows whose event time is in [start, end)."""

    start: AwareDatetime
    end: AwareDatetime
    version: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,9}$")

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class BatchJobOut(BaseModel):
    job_id: str
    state: str = Field(description="running, done or failed")
    source: str = Field(description="file or offline_store")
    model_name: str
    model_version: str
    input_sha256: str
    rows: int
    rows_scored: int
    rows_per_s: float | None
    duration_s: float | None
    output_sha256: str | None
    reason: str | None = Field(description="why the job failed")
    created_at: str
    content_type: str | None
    start: str | None
    end: str | None


_UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            PARQUET: {"schema": {"type": "string", "format": "binary"}},
            CSV: {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": TimeRange.model_json_schema()},
        },
    }
}


@router.post(
    "/batch-scores",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Score a Parquet or CSV file, or a time range of the offline store (ops role)",
    response_model=BatchJobOut,
    openapi_extra=_UPLOAD,
    responses=error_responses(
        404, 413, 415, 422, 429, 503,
        s404="unknown model version",
        s413="file too large",
        s415="neither Parquet, CSV nor a JSON time range",
        s422="unreadable file, missing columns, wrong types, no rows, or an empty time range",
        s429="as many batch jobs as allowed are running; retry later",
        s503="no champion loaded yet, or the registry failed",
    ),
)  # fmt: skip
async def submit(
    request: Request,
    _: Annotated[Principal, Depends(require_roles(Role.OPS))],
    version: Version = None,
) -> JSONResponse:
    settings: ServingSettings = request.app.state.settings
    jobs: BatchJobs = request.app.state.batch_jobs
    jobs.ensure_capacity()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in (PARQUET, CSV, "application/json"):
        raise UnsupportedMediaType(f"send {PARQUET}, {CSV}, or application/json with start and end")
    if media == "application/json":
        body = await _read_small(request)
        try:
            window = TimeRange.model_validate_json(body)
        except ValidationError as exc:
            return invalid(exc)
        job_id, job_dir = jobs.new_job_dir()
        offline = FeatureStoreSettings(settings.feature_store_dir).offline_path

        def load_range(columns: Sequence[Column]) -> pa.Table:
            table = rows_between(offline, window.start, window.end)
            pq.write_table(table, job_dir / "input")  # the snapshot scored, hashed as the input
            return checked(table, columns)

        started = await jobs.submit(
            job_id, load_range, window.version or version, source="offline_store",
            start=window.start.isoformat(), end=window.end.isoformat(),
        )  # fmt: skip
    else:
        job_id, job_dir = jobs.new_job_dir()
        try:
            await _save_upload(request, job_dir / "input", settings.batch_max_bytes)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)  # a refused upload leaves nothing behind
            raise

        def load_file(columns: Sequence[Column]) -> pa.Table:
            return read_input(job_dir / "input", media, columns)

        started = await jobs.submit(job_id, load_file, version, source="file", content_type=media)
    return JSONResponse(_out(started), status_code=status.HTTP_202_ACCEPTED)


@router.get(
    "/batch-scores/{job_id}",
    summary="A batch job's status: running, done or failed (with why), rows, rows/s, model, sha256 (ops)",
    response_model=BatchJobOut,
    responses=error_responses(404, 422, s404="no such job", s422="not a job id"),
)
async def job_status(
    request: Request, job_id: JobId, _: Annotated[Principal, Depends(require_roles(Role.OPS))]
) -> JSONResponse:
    return JSONResponse(_out(request.app.state.batch_jobs.status(job_id)))


@router.get(
    "/batch-scores/{job_id}/file",
    summary="A finished batch job's scores, as Parquet (ops role)",
    response_class=FileResponse,
    responses={
        200: {"content": {PARQUET: {}}},
        **error_responses(404, 409, 422, s409="the job is not done", s422="not a job id"),
    },
)
async def job_file(
    request: Request, job_id: JobId, _: Annotated[Principal, Depends(require_roles(Role.OPS))]
) -> FileResponse:
    jobs: BatchJobs = request.app.state.batch_jobs
    job = jobs.status(job_id)
    if job.state != "done":
        raise BatchNotDone(f"the job is {job.state}" + (f": {job.reason}" if job.reason else ""))
    return FileResponse(jobs.output(job_id), media_type=PARQUET, filename=f"scores-{job_id}.parquet")


def _out(job: JobStatus) -> dict[str, Any]:
    return BatchJobOut.model_validate(job, from_attributes=True).model_dump()


async def _read_small(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _JSON_LIMIT:
            raise BatchTooLarge(f"a time range body is at most {_JSON_LIMIT} bytes")
    return bytes(body)


async def _save_upload(request: Request, path: FilePath, limit: int) -> None:
    """The body to `path`, refused (413) past `limit` bytes, declared or sent."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BatchTooLarge(f"file larger than {limit} bytes")
    size = 0
    with open(path, "wb") as handle:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BatchTooLarge(f"file larger than {limit} bytes")
            handle.write(chunk)
