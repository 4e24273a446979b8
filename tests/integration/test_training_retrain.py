"""Retraining on drift on the real broker, Feast and MLflow, with `retrain_on_drift` on: a concept drift
event asks for a retrain that goes through the same gate (ModelTrained, then ModelPromoted or
ModelRejected with the gate's evidence); a data drift event (one feature) is refused and recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contracts.events import DriftDetected, DriftDetectedPayload, TrainingRequested
from services.training.handlers import TrainingService
from tests.integration.test_training_support import OPS_KEY, Platform, applications, cleaned, observed
from tests.support import wait_until

N = 300
POLICY = """
retrain_on_drift: true
retrain_on_kinds: [concept, prediction]
min_new_labels: 50
retrain_cooldown_s: 3600
max_retrains_per_hour: 2
"""


@pytest.fixture(scope="module")
async def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    state_dir = tmp_path_factory.mktemp("retrain")
    policy = state_dir / "policy.yaml"
    policy.write_text(POLICY)
    platform = Platform(kafka_bootstrap, state_dir, policy_file=policy)
    await platform.create_topics()
    async with (
        platform.features.router.lifespan_context(platform.features),
        platform.training.router.lifespan_context(platform.training),
        platform.probe.broker,
    ):
        await platform.probe.broker.start()
        yield platform


def drift(kind: str, model: str) -> DriftDetected:
    now = datetime.now(UTC)
    payload = DriftDetectedPayload(
        kind=kind, feature="credit_amount" if kind == "data" else None, detector="ADWIN",
        statistic=0.4, window_start=now - timedelta(hours=1), window_end=now,
        window_size=200, model_name=model,
    )  # fmt: skip
    return DriftDetected.create(payload, producer="drift")


async def test_concept_drift_retrains_through_the_gate_and_data_drift_does_not(
    platform: Platform,
) -> None:
    apps = applications(N, "retrain")
    await platform.send([cleaned(app, i) for i, app in enumerate(apps)], "clean")
    await platform.send([observed(app) for app in apps], "labels")
    service: TrainingService = platform.training.state.training
    ledger = platform.features.state.ledger
    await wait_until(lambda: ledger.count() == N, timeout_s=120, what="features for every record")
    await wait_until(
        lambda: sum(e.payload.rows for e in platform.events("FeaturesUpdated")) == N, what="the updates"
    )
    await wait_until(lambda: service.state.label_count() == N, timeout_s=60, what="the labels")

    model = platform.training_settings.model_name
    data, concept = drift("data", model), drift("concept", model)
    await platform.send([data, concept], "drift")  # one partition: decided in this order
    await wait_until(lambda: bool(platform.events("TrainingRequested", concept)), what="the drift retrain")
    [request] = platform.events("TrainingRequested", concept)
    assert isinstance(request, TrainingRequested) and request.payload.reason == "drift"
    assert request.payload.trigger_event_id == str(concept.event_id)
    assert not platform.events("TrainingRequested", data)

    def outcome() -> list[Any]:
        return platform.events("ModelPromoted", request) + platform.events("ModelRejected", request)

    await wait_until(lambda: bool(outcome()), timeout_s=180, what="the gate's verdict on the drift retrain")
    [verdict] = outcome()
    [trained] = platform.events("ModelTrained", request)
    assert verdict.payload.model_version == trained.payload.model_version
    assert verdict.payload.evidence is not None and verdict.payload.evidence.checks

    transport = httpx.ASGITransport(app=platform.training)
    async with httpx.AsyncClient(transport=transport, base_url="http://training") as client:
        status = (await client.get("/retraining", headers={"X-API-Key": OPS_KEY})).json()
    decisions = {d["event_id"]: d for d in status["decisions"]}
    assert decisions[str(data.event_id)]["reason"] == "kind" and not decisions[str(data.event_id)]["go"]
    assert decisions[str(concept.event_id)]["request_id"] == str(request.event_id)
    assert status["paused"] is False and status["policy"]["retrain_on_drift"] is True
