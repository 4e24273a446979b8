"""`python -m services.serving` as its own process, configured only by environment variables, called
over HTTP: ready, predicts by entity, publishes, takes labels, hot-swaps on model.promoted, and
flushes its queued prediction events on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import GateEvidence, ModelPromoted, ModelPromotedPayload, PredictionMade
from infra.settings import REPO_ROOT
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Subscriptions
from tests.integration.test_serving_support import MODEL, World, free_port, wait_ready, world
from tests.support import create_topic, probe_settings, wait_until
from workbench.serving_devdata import mlflow_env


@pytest.fixture(scope="module")
def process(kafka_bootstrap: str) -> Iterator[tuple[subprocess.Popen[bytes], str, World]]:
    w = world()
    mlflow_env()
    import mlflow

    # integration tests in the same session may have left the alias on a corrupted version
    mlflow.MlflowClient(w.mlflow_uri).set_registered_model_alias(MODEL, "champion", w.full)
    port = free_port()
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SERVING_HTTP_PORT": str(port),
        "MLOPS_STATE_DIR": str(w.root / f"state-{suffix}"),
        "MLOPS_API_KEYS_FILE": str(w.keys_file),
        "MLFLOW_TRACKING_URI": w.mlflow_uri,
        "MLOPS_FEAST_REPO": str(w.feast_dir),
        "SERVING_PREDICTIONS_TOPIC": w.topic(f"e2e-{suffix}-predictions"),
        "SERVING_PROMOTIONS_TOPIC": w.topic(f"e2e-{suffix}-promotions"),
        "SERVING_CHAMPION_POLL_S": "0",
    }
    for name in ("predictions", "promotions"):
        asyncio.run(create_topic(kafka_bootstrap, env[f"SERVING_{name.upper()}_TOPIC"], partitions=3))
    log = (w.root / f"serving-{suffix}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "services.serving"], cwd=REPO_ROOT, env=env, stderr=log)
    proc.topics = env  # type: ignore[attr-defined]
    yield proc, f"http://127.0.0.1:{port}", w
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    log.close()


async def test_the_service_process_end_to_end(
    process: tuple[subprocess.Popen[bytes], str, World], kafka_bootstrap: str
) -> None:
    proc, base, w = process
    topics: dict[str, str] = proc.topics  # type: ignore[attr-defined]
    await wait_ready(base, proc)
    mlflow_env()
    import mlflow

    registry = mlflow.MlflowClient(w.mlflow_uri)
    champion = str(registry.get_model_version_by_alias(MODEL, "champion").version)

    broker = make_broker(probe_settings(kafka_bootstrap))
    seen: list[Event[Any]] = []
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe")

    async def collect(event: Event[Any], _: KafkaCoordinates) -> None:
        seen.append(event)

    subs.on_event(topics["SERVING_PREDICTIONS_TOPIC"], PredictionMade, group_id=f"e2e-{uuid.uuid4()}")(
        collect
    )
    entities = list(w.rows)
    async with broker, httpx.AsyncClient(base_url=base, headers={"X-API-Key": w.keys["client"]}) as api:
        await broker.start()
        assert (await api.get("/model")).json()["champion"]["model_version"] == champion
        response = await api.post("/predict", json={"entity_id": entities[0]})
        assert response.status_code == 200 and response.json()["model_version"] == champion
        assert (
            await api.post("/predict", json={"entity_id": entities[0]}, headers={"X-API-Key": "no"})
        ).status_code == 401
        label = await api.post(
            "/labels", json={"prediction_id": response.json()["prediction_id"], "label": "good"}
        )
        assert label.status_code == 202

        target = w.small if champion != w.small else w.full
        registry.set_registered_model_alias(MODEL, "champion", target)
        payload = ModelPromotedPayload(
            model_name=MODEL,
            model_version=target,
            run_id="run",
            evidence=GateEvidence(checks=[], candidate_metrics={"auc": 0.8}),
        )
        await subs.publisher.publish(
            ModelPromoted.create(payload, "training"), topics["SERVING_PROMOTIONS_TOPIC"]
        )
        versions: list[str] = []

        async def answered_by_target() -> bool:
            reply = await api.post("/predict", json={"entity_id": entities[1]})
            assert reply.status_code == 200
            versions.append(reply.json()["model_version"])
            return versions[-1] == target

        for _ in range(1200):
            if await answered_by_target():
                break
            await asyncio.sleep(0.1)
        assert versions[-1] == target

        last = [
            (await api.post("/predict", json={"entity_id": e})).json()["prediction_id"] for e in entities[:20]
        ]
        proc.send_signal(signal.SIGTERM)  # the queued events of these must still be published
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why it stopped
        assert await asyncio.to_thread(proc.wait, 60) in (0, -signal.SIGTERM)

        def flushed() -> set[str]:
            return {e.payload.prediction_id for e in seen}  # type: ignore[attr-defined]

        await wait_until(lambda: set(last) <= flushed(), what="the events queued at SIGTERM")
        assert response.json()["prediction_id"] in flushed()
