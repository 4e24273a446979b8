"""Rollback on the real broker and the real MLflow (temp SQLite): after two promotions (two registered
versions, gated and aliased, their ModelPromoted published as a training run ends), `POST
/models/{name}/rollback` moves the champion alias back to the first, publishes a ModelPromoted of kind
rollback with the reason on model.promoted, and the same request again (same key, or no key) moves
nothing and publishes nothing more; a further rollback is refused (no earlier champion)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from contracts.events import CanaryChanged, GateEvidence, ModelPromoted
from contracts.registry import parse_event
from feature_repo.names import NUMERIC_FEATURES
from servicekit.auth import hash_key
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from services.training.adapters.mlflow_registry import Candidate, MlflowRegistry
from services.training.app import create_app
from services.training.domain.gate import Verdict
from services.training.handlers import TrainingService
from services.training.settings import TrainingSettings
from services.training.trainer import Outcome
from tests.support import create_topic, probe_settings, training_request, wait_until
from tests.unit.test_training_support import FakeSource, feature_frame

OPS_KEY = "mlops_rollback-test-ops-key"
INPUTS = list(NUMERIC_FEATURES[:3])
LINEAGE = {
    "window_start": "2026-01-01T00:00:00+00:00",
    "window_end": "2026-02-01T00:00:00+00:00",
    "dataset_version": "d1",
    "dataset_sha256": "0" * 64,
    "feature_views": "applications",
    "code_version": "c1",
}


class World:
    def __init__(self, bootstrap: str, state_dir: Path) -> None:
        run = uuid.uuid4().hex[:8]
        self.topics = {
            n: f"test.{n}.{run}"
            for n in ("labels", "requests", "drift", "trained", "promoted", "rejected", "canary")
        }
        topics: dict[str, Any] = {f"{name}_topic": topic for name, topic in self.topics.items()}
        self.settings = TrainingSettings(
            kafka_bootstrap_servers=bootstrap,
            state_dir=state_dir,
            model_name=f"credit-rb-{run}",
            group_id=f"training-{run}",
            **topics,
            api_keys_json=json.dumps([{"name": "ops-test", "role": "ops", "sha256": hash_key(OPS_KEY)}]),
        )
        self.app = create_app(self.settings, source=FakeSource(feature_frame(2)))
        broker = make_broker(probe_settings(bootstrap))
        self.probe = Subscriptions(broker, EventPublisher(broker, "probe"), "probe")
        self.promoted: list[ModelPromoted] = []
        self.canaries: list[CanaryChanged] = []
        self.probe.on_raw(self.topics["promoted"], group_id=f"probe-{run}")(self._collect)
        self.probe.on_raw(self.topics["canary"], group_id=f"probe-{run}-canary")(self._collect_canary)
        self.bootstrap = bootstrap

    async def _collect(self, raws: list[RawMessage]) -> None:
        self.promoted.extend(parse_event(raw.value or b"") for raw in raws)  # type: ignore[misc]

    async def _collect_canary(self, raws: list[RawMessage]) -> None:
        self.canaries.extend(parse_event(raw.value or b"") for raw in raws)  # type: ignore[misc]

    def rollbacks(self) -> list[ModelPromoted]:
        return [e for e in self.promoted if e.payload.kind == "rollback"]

    def champion(self) -> str:
        client = mlflow.MlflowClient(self.settings.mlflow_uri)
        return str(client.get_model_version_by_alias(self.settings.model_name, "champion").version)

    async def rollback(self, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        headers = {"X-API-Key": OPS_KEY} | ({"Idempotency-Key": key} if key else {})
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://training") as client:
            return await client.post(
                f"/models/{self.settings.model_name}/rollback", json=body, headers=headers
            )


@pytest.fixture(scope="module")
async def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    world = World(kafka_bootstrap, tmp_path_factory.mktemp("rollback"))
    for topic in world.topics.values():
        await create_topic(kafka_bootstrap, topic)
    async with world.app.router.lifespan_context(world.app), world.probe.broker:
        await world.probe.broker.start()
        yield world


def promote(world: World, seed: int, *, alias: bool = True) -> str:
    """What a training run that passed the gate ends with, on the real registry: a registered version,
    its gate verdict, the champion alias moved; then (by the caller) its ModelPromoted published."""
    registry: MlflowRegistry = world.app.state.rollbacks.registry
    frame = feature_frame(200, seed=seed)
    pipeline = Pipeline([("model", LogisticRegression(max_iter=200))]).fit(frame[INPUTS], frame["_label"])
    candidate = Candidate(pipeline, INPUTS, frame[INPUTS].head(5), 0.5, "0" * 64)
    run_id, version = registry.log_candidate(candidate)
    evidence = GateEvidence(checks=[], candidate_metrics={"auc": 0.7}, verdict="promote")
    registry.record_gate(run_id, version, evidence, {})
    world.outcome = Outcome(  # type: ignore[attr-defined]
        "r",
        "promoted",
        run_id=run_id,
        model_version=version,
        lineage=LINEAGE,
        previous_version=registry.version_of("champion"),
        verdict=Verdict("promote", evidence),
    )
    if alias:
        registry.promote(version)
    return version


async def test_rollback_moves_the_alias_back_once_with_its_reason(world: World) -> None:
    training: TrainingService = world.app.state.training
    versions = []
    for seed in (1, 2):
        versions.append(await asyncio.to_thread(promote, world, seed))
        await training._publish(training_request(world.settings.model_name), world.outcome)  # type: ignore[attr-defined]
    await wait_until(lambda: len(world.promoted) == 2, timeout_s=60, what="the two promotions")
    first, second = versions
    assert world.champion() == second

    body = {"reason": "approval rate fell after the new champion"}
    response = await world.rollback(body, key="it-1")
    assert response.status_code == 200, response.text
    assert (response.json()["champion"], response.json()["replayed"]) == (first, False)
    assert world.champion() == first
    await wait_until(lambda: len(world.rollbacks()) == 1, timeout_s=60, what="the rollback event")
    [event] = world.rollbacks()
    assert str(event.event_id) == response.json()["event_id"]
    p = event.payload
    assert (p.model_version, p.previous_version, p.reason) == (first, second, body["reason"])
    assert p.requested_by == "ops:ops-test" and p.evidence.verdict == "promote"

    again = [await world.rollback(body, key="it-1"), await world.rollback(body)]
    assert [r.json()["replayed"] for r in again] == [True, True]
    assert {r.json()["event_id"] for r in again} == {str(event.event_id)}
    assert world.champion() == first
    refused = await world.rollback({"reason": "once more"})
    assert (refused.status_code, refused.json()["code"]) == (409, "no_earlier_champion")
    await asyncio.sleep(3)  # anything published by the repeats would have arrived by now
    assert len(world.rollbacks()) == 1 and len(world.promoted) == 3
    assert world.champion() == first


async def test_a_canary_moves_its_alias_and_share_and_says_why(world: World) -> None:
    """(After the rollback test: v1 is the champion.) A third version, registered and not promoted,
    becomes the canary on 20%: the alias and the tag are in MLflow, where serving's adapter reads
    them; the same request again publishes nothing; ending it removes the alias."""
    from services.serving.adapters.mlflow_registry import MlflowRegistry as ServingRegistry
    from services.serving.settings import ServingSettings

    if not world.promoted:  # run on its own: a champion first
        await asyncio.to_thread(promote, world, 1)
    champion = world.champion()
    third = await asyncio.to_thread(promote, world, 3, alias=False)
    body = {"version": int(third), "share": 0.2, "reason": "inconclusive at the gate"}
    transport = httpx.ASGITransport(app=world.app)
    headers = {"X-API-Key": OPS_KEY}
    path = f"/models/{world.settings.model_name}/canary"
    async with httpx.AsyncClient(transport=transport, base_url="http://training", headers=headers) as client:
        started = await client.post(path, json=body)
        again = await client.post(path, json=body)
        assert started.status_code == 200, started.text
        assert again.json()["replayed"] and again.json()["event_id"] is None
        serving = ServingRegistry(
            ServingSettings(state_dir=world.settings.state_dir, model_name=world.settings.model_name)
        )
        assert await asyncio.to_thread(serving.version_of, "canary") == third
        assert await asyncio.to_thread(serving.model_tag, "canary_share") == "0.2"
        await wait_until(lambda: len(world.canaries) == 1, timeout_s=60, what="the canary event")
        p = world.canaries[0].payload
        assert (p.action, p.model_version, p.share, p.champion_version) == ("started", third, 0.2, champion)
        assert p.reason == "inconclusive at the gate"
        ended = await client.post(f"{path}/end", json={"reason": "enough"})
        assert ended.status_code == 200, ended.text
        assert await asyncio.to_thread(serving.version_of, "canary") is None
        await wait_until(lambda: len(world.canaries) == 2, timeout_s=60, what="the end of the canary")
        assert world.canaries[1].payload.action == "ended" and world.champion() == champion
