"""POST /batch-scores through TestClient with fakes for MLflow and Kafka: every kind of bad input is a
4xx with a reason (never a 5xx), leaves no job behind, and only ops may call it."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from services.serving.app import create_app
from services.serving.settings import ServingSettings
from tests.unit.test_serving_batch import frame_rows
from tests.unit.test_serving_support import FakeFeatures, FakeRegistry, Published, api_keys, loaded
from workbench.serving_devdata import feature_rows

PARQUET = {"Content-Type": "application/vnd.apache.parquet"}


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    hashed, keys = api_keys(tmp_path)
    settings = ServingSettings(api_keys_file=hashed, state_dir=tmp_path / "state", batch_max_bytes=64 * 1024)
    registry = FakeRegistry({}, {})
    registry.broken.add("99")
    app = create_app(settings, registry=registry, features=FakeFeatures(), publish=Published())
    app.state.slot.swap(loaded("7"))
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["X-API-Key"] = keys["ops"]
    client.keys = keys  # type: ignore[attr-defined]
    client.jobs_dir = settings.service_dir / "batch"  # type: ignore[attr-defined]
    return client


def refused(client: TestClient, status: int, needle: str, **request: object) -> None:
    response = client.post("/batch-scores", **request)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"], response.json()
    jobs_dir: Path = client.jobs_dir  # type: ignore[attr-defined]
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())  # nothing left behind


def test_a_file_missing_columns_is_422_naming_them(client: TestClient) -> None:
    body = parquet(frame_rows(5).drop_columns(["purpose"]))
    refused(client, 422, "missing column(s) the model needs: purpose", content=body, headers=PARQUET)


def test_text_in_a_numeric_csv_column_is_422_naming_it(client: TestClient) -> None:
    frame = frame_rows(4).to_pandas().astype({"age_in_years": object})
    frame.loc[2, "age_in_years"] = "old"
    body = frame.to_csv(index=False).encode()
    refused(
        client, 422, "age_in_years: must hold integers", content=body, headers={"Content-Type": "text/csv"}
    )


def test_empty_and_unreadable_files_are_422(client: TestClient) -> None:
    refused(client, 422, "the file is empty", content=b"", headers=PARQUET)
    refused(client, 422, "could not be read as Parquet", content=b"PAR1 garbage", headers=PARQUET)


def test_an_oversize_file_is_413(client: TestClient) -> None:
    refused(client, 413, "file larger than 65536 bytes", content=b"x" * 70_000, headers=PARQUET)


def test_another_media_type_is_415(client: TestClient) -> None:
    refused(client, 415, "text/csv", content=b"{}", headers={"Content-Type": "application/xml"})


def test_an_unknown_version_is_404(client: TestClient) -> None:
    body = parquet(frame_rows(5))
    response = client.post("/batch-scores?version=99", content=body, headers=PARQUET)
    assert response.status_code == 404 and "model version 99" in response.json()["detail"]
    assert client.post("/batch-scores?version=x", content=body, headers=PARQUET).status_code == 422


def test_a_time_range_without_data_is_422(client: TestClient, tmp_path: Path) -> None:
    offline = tmp_path / "state" / "feast" / "offline" / "loan_applications"  # a directory of parts
    offline.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(feature_rows(20), preserve_index=False), offline / "part-1.parquet")
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    window = {"start": long_ago.isoformat(), "end": (long_ago + timedelta(days=1)).isoformat()}
    refused(client, 422, "no data in the offline store between 2001-01-01", json=window)
    refused(client, 422, "end must be after start", json={"start": window["end"], "end": window["start"]})
    refused(client, 422, "", json={"start": "2001-01-01T00:00:00"})  # naive, and no end
    widest = {"start": "0001-01-01T00:00:00+05:00", "end": "9999-12-31T23:59:59-05:00"}
    accepted = client.post("/batch-scores", json=widest)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["rows"] == 20 and accepted.json()["source"] == "offline_store"


def test_a_good_file_is_accepted_with_its_hash_and_only_ops_may_send_it(client: TestClient) -> None:
    import hashlib

    body = parquet(frame_rows(5))
    keys: dict[str, str] = client.keys  # type: ignore[attr-defined]
    as_client = client.post("/batch-scores", content=body, headers=PARQUET | {"X-API-Key": keys["client"]})
    assert as_client.status_code == 403
    response = client.post("/batch-scores", content=body, headers=PARQUET)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["input_sha256"] == hashlib.sha256(body).hexdigest()
    assert job["rows"] == 5 and job["model_version"] == "7" and job["source"] == "file"
    assert client.get(f"/batch-scores/{job['job_id']}").json()["job_id"] == job["job_id"]
    assert client.get(f"/batch-scores/{'0' * 32}").status_code == 404
    assert client.get("/batch-scores/..%2Fsecrets").status_code in (404, 422)


def test_without_a_champion_a_batch_is_503_no_champion_and_leaves_nothing(client: TestClient) -> None:
    client.app.state.slot.champion = None  # type: ignore[attr-defined]
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    response = client.post("/batch-scores", json=window)
    assert response.status_code == 503 and response.json()["code"] == "no_champion"
    csv = client.post("/batch-scores", content=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    assert csv.status_code == 503 and "name a version" in csv.json()["detail"]
    jobs_dir: Path = client.jobs_dir  # type: ignore[attr-defined]
    assert not jobs_dir.exists() or not any(jobs_dir.iterdir())
