"""Batch scoring's domain and jobs with a real (small) model and no Kafka: chunks change nothing, the
scores are /predict's to the bit, bad inputs are named, the output's schema and lineage, and a job
from submission to its BatchScored event."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.events import BatchScored
from services.serving.batch_jobs import BatchJobs
from services.serving.domain.batch import (
    CSV,
    PARQUET,
    BadInput,
    checked,
    chunks,
    output_batch,
    output_schema,
    read_input,
    score_chunk,
    sha256_of,
)
from services.serving.domain.features import check_features
from services.serving.domain.model import ModelSlot
from services.serving.errors import BadBatchInput, BatchBusy, UnknownModelVersion
from services.serving.handlers import PredictionHandler, Query
from services.serving.labels import RecentPredictions
from tests.unit.test_serving_support import FakeFeatures, FakeRegistry, loaded
from workbench.serving_devdata import feature_rows

MODEL = loaded("3")


def frame_rows(limit: int = 120) -> pa.Table:
    frame = feature_rows(limit).drop(columns=["applied_at"])
    return pa.Table.from_pandas(frame, preserve_index=False)


def write(tmp_path: Path, table: pa.Table, kind: str = PARQUET) -> Path:
    path = tmp_path / "input"
    if kind == PARQUET:
        pq.write_table(table, path)
    else:
        path.write_text(table.to_pandas().to_csv(index=False))
    return path


class Offers:
    def __init__(self) -> None:
        self.items: list[object] = []

    def offer(self, item: object) -> bool:
        self.items.append(item)
        return True


def test_batch_scores_are_the_online_scores_bit_for_bit_whatever_the_chunking() -> None:
    table = checked(frame_rows(), MODEL.columns)
    whole = score_chunk(MODEL, table)
    in_chunks = [s for part in chunks(table, 7) for s in score_chunk(MODEL, part).scores]
    online = [
        MODEL.scorer.score([check_features(MODEL.columns, row)])[0]
        for row in table.select(list(MODEL.feature_names)).to_pylist()
    ]
    assert MODEL.scorer.kind == "linear"
    assert whole.scores == in_chunks == online
    assert whole.decisions == [MODEL.decide(s) for s in online]
    assert whole.ids["application_id"] == table["application_id"].to_pylist()


def test_the_sklearn_fallback_depends_on_the_batch_online_too() -> None:
    """scikit-learn's matrix products round differently with the number of rows (seen: 39 of 120 rows
    one ulp apart between 1-row and 120-row calls), so only the compiled scorer is bit-exact across
    batch shapes; /predict with 1 or 100 instances differs the same way."""
    model = loaded("3", compiled=False)
    table = checked(frame_rows(), model.columns)
    whole = score_chunk(model, table).scores
    one_by_one = [s for part in chunks(table, 1) for s in score_chunk(model, part).scores]
    assert whole == pytest.approx(one_by_one, rel=1e-14, abs=1e-15)


def test_batch_scores_equal_what_the_prediction_handler_answers() -> None:
    slot = ModelSlot()
    slot.swap(MODEL)
    table = checked(frame_rows(30), MODEL.columns)
    online_rows = table.select(list(MODEL.feature_names)).to_pylist()
    handler = PredictionHandler(slot, FakeFeatures({}), Offers(), RecentPredictions(100), "t")
    answered = handler.predict([Query(features=row) for row in online_rows], 0.0)
    scored = score_chunk(MODEL, table)
    assert scored.scores == [p.score for p in answered]
    assert scored.probabilities == [p.probability for p in answered]


def test_csv_and_parquet_read_to_the_same_scores(tmp_path: Path) -> None:
    table = frame_rows(40)
    (tmp_path / "p").mkdir()
    (tmp_path / "c").mkdir()
    from_parquet = read_input(write(tmp_path / "p", table), PARQUET, MODEL.columns)
    from_csv = read_input(write(tmp_path / "c", table, CSV), CSV, MODEL.columns)
    assert score_chunk(MODEL, from_parquet).scores == score_chunk(MODEL, from_csv).scores


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop_columns(["purpose", "age_in_years"]), "missing column(s) the model needs: "),
        (lambda t: t.slice(0, 0), "the input has no rows"),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("age_in_years"), "age_in_years", pa.array(["x"] * 5)
            ),
            "age_in_years: must hold integers, not string",
        ),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("credit_amount"),
                "credit_amount",
                pa.array([1.0, None, 2.0, 3.0, 4.0]),
            ),
            "credit_amount: 1 empty value(s)",
        ),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("credit_amount"), "credit_amount", pa.array([float("nan")] * 5)
            ),
            "credit_amount: NaN or infinite value(s)",
        ),
    ],
)
def test_bad_tables_are_refused_naming_the_problem(change: object, message: str) -> None:
    with pytest.raises(BadInput) as refused:
        checked(change(frame_rows(5)), MODEL.columns)  # type: ignore[operator]
    assert message in str(refused.value)
    if "missing" in message:
        assert "age_in_years" in str(refused.value) and "purpose" in str(refused.value)


def test_unreadable_and_empty_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "input"
    path.write_bytes(b"")
    with pytest.raises(BadInput, match="the file is empty"):
        read_input(path, PARQUET, MODEL.columns)
    path.write_bytes(b"not parquet at all")
    with pytest.raises(BadInput, match="could not be read as Parquet"):
        read_input(path, PARQUET, MODEL.columns)
    csv = frame_rows(3).to_pandas().astype({"duration_in_month": object})
    csv.loc[1, "duration_in_month"] = "twelve"
    path.write_text(csv.to_csv(index=False))
    with pytest.raises(BadInput, match="duration_in_month: must hold integers, not string"):
        read_input(path, CSV, MODEL.columns)


def test_output_schema_carries_scores_decisions_model_and_lineage() -> None:
    table = checked(frame_rows(10), MODEL.columns)
    schema = output_schema(MODEL, ["application_id"], {"input_sha256": "ab" * 32})
    batch = output_batch(MODEL, score_chunk(MODEL, table), schema)
    assert batch.schema.names == [
        "application_id", "score", "probability", "decision", "model_name", "model_version"
    ]  # fmt: skip
    assert set(batch["decision"].to_pylist()) <= {"approve", "decline"}
    assert batch["model_version"].to_pylist() == ["3"] * 10
    assert batch.schema.metadata[b"input_sha256"] == b"ab" * 32
    assert batch.schema.metadata[b"model_version"] == b"3"


def test_sha256_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_of(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


async def test_a_job_scores_writes_and_announces(tmp_path: Path) -> None:
    slot = ModelSlot()
    slot.swap(MODEL)
    offers = Offers()
    jobs = BatchJobs(tmp_path, slot, FakeRegistry({"4": loaded("4", c=0.2)}, {}), offers, "serving", 16)
    job_id, job_dir = jobs.new_job_dir()
    input_sha256 = sha256_of(write(job_dir, frame_rows(50)))
    status = await jobs.submit(
        job_id, lambda cols: read_input(job_dir / "input", PARQUET, cols), "4", source="file"
    )
    while jobs.status(job_id).state == "running":
        await asyncio.sleep(0.01)
    done = jobs.status(job_id)
    assert done.state == "done" and done.rows_scored == 50 and done.model_version == "4"
    output = pq.read_table(jobs.output(job_id))
    assert output.num_rows == 50 and output.schema.metadata[b"input_sha256"] == status.input_sha256.encode()
    assert status.input_sha256 == input_sha256 == done.input_sha256
    [announcement] = offers.items
    [event] = announcement.events()  # type: ignore[attr-defined]
    assert isinstance(event, BatchScored) and event.payload.rows == 50
    assert event.payload.input_sha256 == status.input_sha256
    assert event.payload.output_sha256 == sha256_of(jobs.output(job_id))


async def test_a_bad_input_or_an_unknown_version_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    slot = ModelSlot()
    slot.swap(MODEL)
    registry = FakeRegistry({}, {})
    registry.broken.add("99")
    jobs = BatchJobs(tmp_path, slot, registry, Offers(), "serving", 16)
    job_id, job_dir = jobs.new_job_dir()
    write(job_dir, frame_rows(5).drop_columns(["housing"]))
    with pytest.raises(BadBatchInput, match="housing"):
        await jobs.submit(job_id, lambda c: read_input(job_dir / "input", PARQUET, c), None, source="file")
    assert not job_dir.exists()
    job_id, job_dir = jobs.new_job_dir()
    write(job_dir, frame_rows(5))
    with pytest.raises(UnknownModelVersion, match="99"):
        await jobs.submit(job_id, lambda c: read_input(job_dir / "input", PARQUET, c), "99", source="file")
    assert not job_dir.exists()


def test_the_batch_topic_is_created_and_audited_like_every_topic() -> None:
    from contracts.topics import BATCH_SCORED
    from infra.topics import platform_topics
    from services.audit.settings import AuditSettings

    assert BatchScored.topic == BATCH_SCORED
    assert BATCH_SCORED in [plan.name for plan in platform_topics(3, 1)]
    assert BATCH_SCORED in AuditSettings().topics


def test_a_job_left_running_by_a_dead_process_reads_as_failed(tmp_path: Path) -> None:
    first = BatchJobs(tmp_path, ModelSlot(), FakeRegistry({}, {}), Offers(), "serving", 16)
    job_id, job_dir = first.new_job_dir()
    saved = {
        "job_id": job_id, "state": "running", "source": "file", "model_name": "m", "model_version": "1",
        "input_sha256": "ab" * 32, "rows": 5, "created_at": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip
    (job_dir / "status.json").write_text(json.dumps(saved))
    restarted = BatchJobs(tmp_path, ModelSlot(), FakeRegistry({}, {}), Offers(), "serving", 16)
    status = restarted.status(job_id)
    assert status.state == "failed" and status.reason == "the service restarted before the job finished"


async def test_jobs_beyond_the_cap_are_refused_until_one_ends(tmp_path: Path) -> None:
    slot = ModelSlot()
    slot.swap(MODEL)
    jobs = BatchJobs(tmp_path, slot, FakeRegistry({}, {}), Offers(), "serving", 16, max_running=1)
    job_id, job_dir = jobs.new_job_dir()
    write(job_dir, frame_rows(40))
    await jobs.submit(job_id, lambda c: read_input(job_dir / "input", PARQUET, c), None, source="file")
    with pytest.raises(BatchBusy, match="1 batch jobs running, at most 1"):
        jobs.ensure_capacity()
    while jobs.running:
        await asyncio.sleep(0.01)
    assert jobs.status(job_id).state == "done"
    jobs.ensure_capacity()


async def test_a_job_stopped_mid_way_is_failed_and_its_thread_cleans_up(tmp_path: Path) -> None:
    slot = ModelSlot()
    slot.swap(MODEL)
    offers = Offers()
    jobs = BatchJobs(tmp_path, slot, FakeRegistry({}, {}), offers, "serving", 2)
    job_id, job_dir = jobs.new_job_dir()
    write(job_dir, frame_rows(1000))
    await jobs.submit(job_id, lambda c: read_input(job_dir / "input", PARQUET, c), None, source="file")
    while jobs.status(job_id).rows_scored == 0:
        await asyncio.sleep(0.001)
    await jobs.close()  # as at shutdown: the writer must not be closed under the thread
    status = jobs.status(job_id)
    assert status.state == "failed" and status.reason == "the service stopped before the job finished"
    for _ in range(1000):  # the thread notices at its next chunk
        if not (job_dir / ".scores.parquet.partial").exists():
            break
        await asyncio.sleep(0.01)
    assert not (job_dir / ".scores.parquet.partial").exists() and not jobs.output(job_id).exists()
    assert offers.items == [] and status.rows_scored < 1000
