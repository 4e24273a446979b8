"""Batch scoring against a real serving service (uvicorn in a thread), the real broker, a real Feast
repo and a real MLflow registry: the same rows scored by /predict and by POST /batch-scores give
identical scores (==) and decisions, a time range of the offline store is scored too, one BatchScored
event with the input's sha256 and row count lands on its topic, and garbage is a 4xx with a reason."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import BatchScored
from infra import cli
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Subscriptions
from services.serving.settings import ServingSettings
from tests.integration.test_serving_support import World, serving_in_thread, world
from tests.support import probe_settings, wait_until

PARQUET = "application/vnd.apache.parquet"


@pytest.fixture(scope="module")
def w() -> World:
    return world()


@pytest.fixture(scope="module")
def server(kafka_bootstrap: str, w: World) -> Iterator[str]:
    settings = ServingSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        state_dir=w.root / "batch-state",
        feast_repo_dir=w.feast_dir,
        mlflow_tracking_uri=w.mlflow_uri,
        api_keys_file=w.keys_file,
        champion_poll_s=0,
        predictions_topic=w.topic("batch-predictions"),
        batch_scored_topic=w.topic("batch-scored"),
        promotions_topic=w.topic("batch-promotions"),
        batch_chunk_rows=64,  # several chunks for 200 rows
        batch_max_bytes=256 * 1024,  # the 200 rows are about 40 kB, even as CSV
    )
    topics = {w.topic(name): 1 for name in ("batch-predictions", "batch-scored", "batch-promotions")}
    with serving_in_thread(settings, topics) as base:
        yield base


class Observer:
    def __init__(self, bootstrap: str, w: World) -> None:
        self.broker = make_broker(probe_settings(bootstrap))
        subs = Subscriptions(self.broker, EventPublisher(self.broker, "probe"), "probe")
        self.events: list[BatchScored] = []
        subs.on_event(w.topic("batch-scored"), BatchScored, group_id=f"obs-{uuid.uuid4()}")(self._collect)

    async def _collect(self, event: Event[Any], _: KafkaCoordinates) -> None:
        assert isinstance(event, BatchScored)
        self.events.append(event)


@pytest.fixture(scope="module")
async def observer(kafka_bootstrap: str, w: World, server: str) -> AsyncIterator[Observer]:
    obs = Observer(kafka_bootstrap, w)
    async with obs.broker:
        await obs.broker.start()
        yield obs


@pytest.fixture
async def ops(server: str, w: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": w.keys["ops"]}, timeout=60) as c:
        yield c


@pytest.fixture
async def client(server: str, w: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": w.keys["client"]}, timeout=60) as c:
        yield c


def rows_file(w: World, columns: list[str] | None = None) -> bytes:
    records = [{"application_id": entity, **values} for entity, values in w.rows.items()]
    table = pa.Table.from_pylist(records)
    if columns is not None:
        table = table.select(columns)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


async def finished(ops: httpx.AsyncClient, job: dict[str, Any]) -> tuple[dict[str, Any], pa.Table]:
    status: dict[str, Any] = {}

    async def done() -> bool:
        status.update((await ops.get(f"/batch-scores/{job['job_id']}")).json())
        return status["state"] != "running"

    for _ in range(600):
        if await done():
            break
        await asyncio.sleep(0.1)
    assert status["state"] == "done", status
    download = await ops.get(f"/batch-scores/{job['job_id']}/file")
    assert download.status_code == 200 and download.headers["content-type"] == PARQUET
    return status, pq.read_table(io.BytesIO(download.content))


async def online(client: httpx.AsyncClient, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    for at in range(0, len(instances), 100):  # the default most instances per /predict
        response = await client.post("/predict", json={"instances": instances[at : at + 100]})
        assert response.status_code == 200, response.text
        answers += response.json()
    return answers


async def test_batch_and_online_scores_are_identical_and_announced(
    ops: httpx.AsyncClient, client: httpx.AsyncClient, w: World, observer: Observer
) -> None:
    body = rows_file(w)
    response = await ops.post("/batch-scores", content=body, headers={"Content-Type": PARQUET})
    assert response.status_code == 202, response.text
    status, scores = await finished(ops, response.json())
    # The world is shared by the process's serving tests, which move the champion: compare with the
    # one served now, whichever it is.
    champion = (await client.get("/model")).json()["champion"]
    features, served = champion["features"], champion["model_version"]
    by_features = await online(client, [{"features": {k: w.rows[e][k] for k in features}} for e in w.rows])
    by_entity = await online(client, [{"entity_id": e} for e in w.rows])
    assert scores["application_id"].to_pylist() == list(w.rows)
    assert scores["score"].to_pylist() == [p["score"] for p in by_features] == [p["score"] for p in by_entity]
    assert scores["decision"].to_pylist() == [p["decision"] for p in by_features]
    assert scores["probability"].to_pylist() == [p["probability"] for p in by_features]
    assert set(scores["model_version"].to_pylist()) == {served} == {p["model_version"] for p in by_features}
    assert status["model_version"] == served
    sha = hashlib.sha256(body).hexdigest()
    assert status["input_sha256"] == sha and status["rows"] == len(w.rows)
    assert scores.schema.metadata[b"input_sha256"] == sha.encode()
    await wait_until(lambda: any(e.payload.job_id == status["job_id"] for e in observer.events), what="event")
    [event] = [e for e in observer.events if e.payload.job_id == status["job_id"]]
    assert event.payload.input_sha256 == sha and event.payload.rows == len(w.rows)
    assert event.payload.model_version == served and event.payload.source == "file"


async def test_a_time_range_of_the_offline_store_and_a_named_version(
    ops: httpx.AsyncClient, client: httpx.AsyncClient, w: World
) -> None:
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(days=3)).isoformat(), "end": (now + timedelta(hours=1)).isoformat()}
    response = await ops.post("/batch-scores", json=window | {"version": w.small})
    assert response.status_code == 202, response.text
    status, scores = await finished(ops, response.json())
    assert status["source"] == "offline_store" and status["model_version"] == w.small
    assert scores.num_rows == len(w.rows) and set(scores["model_version"].to_pylist()) == {w.small}
    assert sorted(scores["application_id"].to_pylist()) == sorted(w.rows)


async def test_garbage_is_a_4xx_with_a_reason(ops: httpx.AsyncClient, w: World) -> None:
    headers = {"Content-Type": PARQUET}
    missing = await ops.post(
        "/batch-scores", content=rows_file(w, ["application_id", "age_in_years"]), headers=headers
    )
    assert missing.status_code == 422 and "missing column(s) the model needs" in missing.json()["detail"]
    frame = pq.read_table(io.BytesIO(rows_file(w))).to_pandas().astype({"age_in_years": object})
    frame.loc[3, "age_in_years"] = "forty"
    csv = frame.to_csv(index=False)
    text = await ops.post("/batch-scores", content=csv, headers={"Content-Type": "text/csv"})
    assert text.status_code == 422 and "age_in_years: must hold integers" in text.json()["detail"]
    empty = await ops.post("/batch-scores", content=b"", headers=headers)
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    unknown = await ops.post("/batch-scores?version=999", content=rows_file(w), headers=headers)
    assert unknown.status_code == 404 and "model version 999" in unknown.json()["detail"]
    oversize = await ops.post("/batch-scores", content=b"x" * (300 * 1024), headers=headers)
    assert oversize.status_code == 413 and "file larger than 262144 bytes" in oversize.json()["detail"]
    long_ago = {"start": "2001-01-01T00:00:00Z", "end": "2001-01-02T00:00:00Z"}
    no_data = await ops.post("/batch-scores", json=long_ago)
    assert no_data.status_code == 422 and "no data in the offline store" in no_data.json()["detail"]


async def test_mlops_score_against_the_service(
    server: str, w: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--url", server, "--api-key", w.keys["ops"]]
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(rows_file(w, ["application_id", "purpose"]))
    assert await asyncio.to_thread(cli.main, ["score", str(bad), *flags]) == 2
    assert "error: missing column(s) the model needs: duration_in_month" in capsys.readouterr().err
    good = tmp_path / "apps.parquet"
    good.write_bytes(rows_file(w))
    assert (
        await asyncio.to_thread(cli.main, ["score", str(good), "--out", str(tmp_path / "s.parquet"), *flags])
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert (
        line.startswith(f"scored {len(w.rows)} rows at ")
        and hashlib.sha256(good.read_bytes()).hexdigest() in line
    )
    assert pq.read_table(tmp_path / "s.parquet").num_rows == len(w.rows)
    empty_range = ["score", "--start", "2001-01-01T00:00:00Z", "--end", "2001-01-02T00:00:00Z", *flags]
    assert await asyncio.to_thread(cli.main, empty_range) == 2
    assert "error: no data in the offline store between 2001-01-01" in capsys.readouterr().err
