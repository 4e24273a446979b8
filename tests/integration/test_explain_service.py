"""The explain service against the real broker and a real MLflow registry (SQLite): predictions.made
fills its store, model.promoted yields global explanations stored as artifacts of that version, and
/explain by prediction id uses the version that made the prediction; events go to the real topic."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.events import (
    GateEvidence,
    ModelPromoted,
    ModelPromotedPayload,
    PredictionMade,
    PredictionMadePayload,
)
from contracts.registry import encode_event
from servicekit.auth import Role, write_dev_keys
from services.explain.app import create_app
from services.explain.settings import ExplainSettings
from tests.integration.test_serving_support import free_port
from tests.support import create_topic, wait_until
from workbench.serving_devdata import germancredit, mlflow_env, register_reference_model

SMALL = ("duration_in_month", "credit_amount", "age_in_years", "purpose", "housing")
MODEL = "credit-risk"


def log_training_set(uri: str, version: str) -> None:
    """The training service logs dataset/training_set.parquet with each run; the reference model does not."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    run_id = client.get_model_version(MODEL, version).run_id
    data = germancredit().head(300)
    frame = data[list(SMALL)].assign(label=(data["creditability"] == "bad").astype(int))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "training_set.parquet"
        frame.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), "dataset")


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str) -> Iterator[dict[str, str]]:
    mlflow_env()
    root = Path(tempfile.mkdtemp(prefix="explain-test-"))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    v1 = register_reference_model(uri, root / "artifacts", MODEL, features=SMALL)
    v2 = register_reference_model(uri, root / "artifacts", MODEL, features=SMALL, c=0.05)
    for v in (v1, v2):
        log_training_set(uri, v)
    _, keys_file = write_dev_keys(root / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((root / "secrets" / "api-keys.json").read_text())
    suffix = uuid.uuid4().hex[:8]
    topics = {n: f"test.explain.{suffix}.{n}" for n in ("predictions", "promotions", "explanations")}
    asyncio.run(_topics(kafka_bootstrap, list(topics.values())))
    settings = ExplainSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        state_dir=root / "state",
        mlflow_tracking_uri=uri,
        api_keys_file=keys_file,
        predictions_topic=topics["predictions"],
        promotions_topic=topics["promotions"],
        explanations_topic=topics["explanations"],
        global_rows=100,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    asyncio.run(wait_until(lambda: _ready(base), 120, "explain ready"))
    by_role = {v["role"]: v["key"] for v in plain.values()}
    yield {"base": base, "v1": v1, "v2": v2, "key": by_role["auditor"], "client_key": by_role["client"]} | {
        "mlflow": uri,
        **topics,
    }
    server.should_exit = True
    thread.join(30)


async def _topics(bootstrap: str, names: list[str]) -> None:
    for name in names:
        await create_topic(bootstrap, name, partitions=1)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


async def _send(bootstrap: str, topic: str, event: object) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, encode_event(event))  # type: ignore[arg-type]
    finally:
        await producer.stop()


async def _explanations(bootstrap: str, topic: str, wanted: int) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: list[dict[str, object]] = []
    try:
        while len(found) < wanted:
            batch = await consumer.getmany(timeout_ms=60_000)
            assert batch, "no explanation.produced event arrived"
            found += [json.loads(r.value) for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    return found


def test_promotion_then_prediction_explained_by_its_own_version(
    kafka_bootstrap: str, world: dict[str, str]
) -> None:
    promoted = ModelPromoted.create(
        ModelPromotedPayload(
            model_name=MODEL, model_version=world["v2"], run_id="r",
            evidence=GateEvidence(checks=[], candidate_metrics={}),
        ),
        producer="training",
    )  # fmt: skip
    row = germancredit().iloc[5]
    features = {k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in SMALL}
    made = PredictionMade.create(
        PredictionMadePayload(
            prediction_id="pred-1", model_name=MODEL, model_version=world["v1"], score=0.3,
            decision="approve", features=features, latency_ms=1.0,
        ),
        producer="serving",
    )  # fmt: skip
    asyncio.run(_send(kafka_bootstrap, world["promotions"], promoted))
    asyncio.run(_send(kafka_bootstrap, world["predictions"], made))
    headers = {"X-API-Key": world["key"]}
    base = world["base"]

    def explained() -> bool:
        return (
            httpx.get(f"{base}/explain/pred-1?methods=shap", headers=headers, timeout=30).status_code == 200
        )

    asyncio.run(wait_until(explained, 90, "the prediction to be explainable"))
    body = httpx.get(f"{base}/explain/pred-1", headers={"X-API-Key": world["client_key"]}, timeout=30).json()
    assert body["model_version"] == world["v1"]  # the version that made it, not the newest
    assert body["fidelity"]["shap_additive"] is True and body["summary"]

    def has_global() -> bool:
        return bool(
            httpx.get(f"{base}/explanations/global/{world['v2']}", headers=headers).json()["available"]
        )

    asyncio.run(wait_until(has_global, 120, "global explanations of the new champion"))
    events = asyncio.run(_explanations(kafka_bootstrap, world["explanations"], 3))
    scopes = {(e["payload"]["scope"], e["payload"]["model_version"]) for e in events}  # type: ignore[index]
    assert ("local", world["v1"]) in scopes and ("global", world["v2"]) in scopes
    gl = next(e for e in events if e["payload"]["scope"] == "global")  # type: ignore[index]
    uri = gl["payload"]["artifact_uri"]  # type: ignore[index]
    import mlflow

    run_id, path = str(uri).removeprefix("runs:/").split("/", 1)
    files = {Path(f.path).name for f in mlflow.MlflowClient(world["mlflow"]).list_artifacts(run_id, path)}
    assert {"global.json", "importance.png"} <= files
    # The version's description (its card in MLflow's UI) names the top factors, as the event does.
    description = mlflow.MlflowClient(world["mlflow"]).get_model_version(MODEL, world["v2"]).description
    summary = gl["payload"]["summary"]  # type: ignore[index]
    assert f"Top factors (permutation importance): {summary}" in description
    assert summary.startswith(f"Model version {world['v2']} relies most on")


def test_unknown_versions_are_404s_of_the_registry_not_500s(world: dict[str, str]) -> None:
    """Issue 20: MLflow's "Model Version ... not found" reaches the edge as the kit's 404."""
    headers = {"X-API-Key": world["key"]}
    for version in ("0", "999", "123456789"):
        response = httpx.get(f"{world['base']}/explanations/global/{version}", headers=headers, timeout=30)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found" and version not in response.json()["detail"]
    known = httpx.get(f"{world['base']}/explanations/global/{world['v1']}", headers=headers, timeout=30)
    assert known.status_code == 200 and known.json()["model_version"] == world["v1"]
    for bad in ("latest", "-1", "1.0", "9" * 10):
        response = httpx.get(f"{world['base']}/explanations/global/{bad}", headers=headers, timeout=30)
        assert response.status_code == 422, (bad, response.text)
