"""The serving service against the real broker, a real Feast repo and a real MLflow registry: the
app runs under uvicorn in a thread and is called over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import GateEvidence, LabelObserved, ModelPromoted, ModelPromotedPayload, PredictionMade
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Subscriptions
from tests.integration.test_serving_support import (
    MODEL,
    SMALL,
    World,
    serving_in_thread,
    serving_settings,
    world,
)
from tests.support import probe_settings, wait_until
from workbench.serving_devdata import mlflow_env, model_artifact_files


@pytest.fixture(scope="module")
def w() -> World:
    return world()


@pytest.fixture(scope="module")
def server(kafka_bootstrap: str, w: World) -> Iterator[str]:
    settings = serving_settings(kafka_bootstrap, w)
    topics = {w.topic(name): 3 for name in ("predictions", "labels", "promotions")}
    with serving_in_thread(settings, topics) as base:
        yield base


class Observer:
    """Collects the events serving publishes (its own consumer group, from the start)."""

    def __init__(self, bootstrap: str, w: World) -> None:
        settings = probe_settings(bootstrap)
        self.broker = make_broker(settings)
        self.publisher = EventPublisher(self.broker, "probe")
        subs = Subscriptions(self.broker, self.publisher, "probe")
        self.events: list[Event[Any]] = []
        group = f"obs-{uuid.uuid4()}"
        for name, kind in (("predictions", PredictionMade), ("labels", LabelObserved)):
            subs.on_event(w.topic(name), kind, group_id=group)(self._collect)

    async def _collect(self, event: Event[Any], _: KafkaCoordinates) -> None:
        self.events.append(event)

    def of(self, kind: type[Event[Any]], **payload: Any) -> list[Any]:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and all(getattr(e.payload, k) == v for k, v in payload.items())
        ]


@pytest.fixture(scope="module")
async def observer(kafka_bootstrap: str, w: World, server: str) -> AsyncIterator[Observer]:
    obs = Observer(kafka_bootstrap, w)
    async with obs.broker:
        await obs.broker.start()
        yield obs


@pytest.fixture
async def api(server: str, w: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": w.keys["client"]}, timeout=30) as c:
        yield c


async def promote(w: World, publisher: EventPublisher, version: str, topic: str = "promotions") -> None:
    """What training does: move the alias, then announce it (on the world's `topic`)."""
    mlflow_env()
    import mlflow

    client = mlflow.MlflowClient(w.mlflow_uri)
    previous = client.get_model_version_by_alias(MODEL, "champion").version
    await asyncio.to_thread(client.set_registered_model_alias, MODEL, "champion", version)
    payload = ModelPromotedPayload(
        model_name=MODEL,
        model_version=version,
        run_id=client.get_model_version(MODEL, version).run_id or "run",
        previous_version=str(previous),
        evidence=GateEvidence(checks=[], candidate_metrics={"auc": 0.8}),
    )
    await publisher.publish(ModelPromoted.create(payload, "training"), w.topic(topic))


async def served_version(api: httpx.AsyncClient) -> str:
    return str((await api.get("/model")).json()["champion"]["model_version"])


async def test_predict_by_entity_publishes_what_it_used(
    api: httpx.AsyncClient, w: World, observer: Observer
) -> None:
    entity = next(iter(w.rows))
    response = await api.post("/predict", json={"entity_id": entity})
    assert response.status_code == 200, response.text
    body = response.json()
    await wait_until(
        lambda: observer.of(PredictionMade, prediction_id=body["prediction_id"]), what="PredictionMade"
    )
    [event] = observer.of(PredictionMade, prediction_id=body["prediction_id"])
    assert event.payload.entity_id == entity and event.payload.model_version == body["model_version"]
    assert event.payload.score == body["score"] and event.payload.decision == body["decision"]
    model = (await api.get("/model")).json()["champion"]
    assert event.payload.features == {k: w.rows[entity][k] for k in model["features"]}
    assert event.payload.latency_ms > 0 and not event.payload.shadow


async def test_predict_by_features_matches_predict_by_entity(api: httpx.AsyncClient, w: World) -> None:
    entity = list(w.rows)[5]
    model = (await api.get("/model")).json()["champion"]
    features = {k: w.rows[entity][k] for k in model["features"]}
    by_entity = (await api.post("/predict", json={"entity_id": entity})).json()
    by_features = (await api.post("/predict", json={"features": features})).json()
    assert by_features["score"] == pytest.approx(by_entity["score"], abs=1e-12)
    batch = await api.post("/predict", json={"instances": [{"entity_id": entity}, {"features": features}]})
    assert [p["score"] for p in batch.json()] == pytest.approx([by_entity["score"]] * 2, abs=1e-12)


async def test_unknown_entity_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/predict", json={"entity_id": "app-does-not-exist"})
    assert response.status_code == 404 and "no features" in response.json()["detail"]
    assert "app-does-not-exist" not in response.text  # an entity id may be personal data


async def test_labels_publish_label_observed(api: httpx.AsyncClient, w: World, observer: Observer) -> None:
    entity = list(w.rows)[7]
    prediction = (await api.post("/predict", json={"entity_id": entity})).json()
    response = await api.post("/labels", json={"prediction_id": prediction["prediction_id"], "label": "bad"})
    assert response.status_code == 202
    await wait_until(
        lambda: observer.of(LabelObserved, prediction_id=prediction["prediction_id"]), what="label"
    )
    [label] = observer.of(LabelObserved, prediction_id=prediction["prediction_id"])
    assert label.payload.entity_id == entity and label.payload.label == "bad"
    assert str(label.event_id) == response.json()["event_id"]


async def test_labels_must_name_a_prediction_made_for_its_entity_once(
    api: httpx.AsyncClient, w: World, observer: Observer
) -> None:
    first, other = list(w.rows)[8], list(w.rows)[9]
    made = (await api.post("/predict", json={"entity_id": first})).json()["prediction_id"]
    forged = {"prediction_id": "f" * 32, "label": "bad", "entity_id": first}
    assert (await api.post("/labels", json=forged)).status_code == 404
    wrong = {"prediction_id": made, "label": "bad", "entity_id": other}
    assert (await api.post("/labels", json=wrong)).status_code == 409
    right = {"prediction_id": made, "label": "bad", "entity_id": first}
    accepted = [await api.post("/labels", json=right) for _ in range(2)]
    assert [r.status_code for r in accepted] == [202, 202] and accepted[0].json() == accepted[1].json()
    assert (await api.post("/labels", json={**right, "label": "good"})).status_code == 409

    marker = (await api.post("/predict", json={"entity_id": other})).json()["prediction_id"]
    assert (await api.post("/labels", json={"prediction_id": marker, "label": "good"})).status_code == 202
    await wait_until(lambda: observer.of(LabelObserved, prediction_id=marker), what="the marker label")
    [label] = observer.of(LabelObserved, prediction_id=made)  # once, for the right entity
    assert label.payload.entity_id == first and str(label.event_id) == accepted[0].json()["event_id"]
    assert observer.of(LabelObserved, prediction_id="f" * 32) == []
    assert observer.of(LabelObserved, entity_id=other, prediction_id=made) == []


async def test_feature_values_outside_the_training_profile_are_refused_and_never_published(
    api: httpx.AsyncClient, w: World, observer: Observer
) -> None:
    model = (await api.get("/model")).json()["champion"]
    assert model["profiled"] == sorted(model["features"])  # the card came from the real registry
    entity = list(w.rows)[10]
    good = {k: w.rows[entity][k] for k in model["features"]}
    hostile = [
        {"duration_in_month": -(10**18)},
        {"duration_in_month": 10**30},
        {"credit_amount": 1e30},
        {"purpose": "yacht"},
    ]
    for change in hostile:
        response = await api.post("/predict", json={"features": {**good, **change}})
        assert response.status_code == 422, response.text
        [error] = response.json()["errors"]
        assert error["field"] == f"features.{next(iter(change))}" and error["code"] == "out_of_profile"
    huge = await api.post("/predict", json={"features": {**good, "purpose": "x" * 100_000}})
    assert huge.status_code in (413, 422)

    marker = (await api.post("/predict", json={"features": good})).json()
    assert marker["out_of_profile"] == []
    await wait_until(
        lambda: observer.of(PredictionMade, prediction_id=marker["prediction_id"]), what="marker"
    )
    published = [e.payload.features for e in observer.of(PredictionMade)]
    for change in hostile:
        [(name, value)] = change.items()
        assert not any(features.get(name) == value for features in published)


async def test_promotion_swaps_the_model_while_requests_never_fail(
    api: httpx.AsyncClient, w: World, observer: Observer
) -> None:
    before = await served_version(api)
    target = w.small if before != w.small else w.full
    entities = list(w.rows)
    seen: list[list[tuple[int, str]]] = [[] for _ in range(4)]
    stop = asyncio.Event()

    async def hammer(worker: int) -> None:
        i = worker
        while not stop.is_set():
            response = await api.post("/predict", json={"entity_id": entities[i % len(entities)]})
            seen[worker].append((response.status_code, response.json().get("model_version", "?")))
            i += 4

    workers = [asyncio.create_task(hammer(k)) for k in range(4)]
    await wait_until(lambda: all(len(s) >= 5 for s in seen), what="traffic before the swap")
    await promote(w, observer.publisher, target)
    await wait_until(
        lambda: all(s and s[-1][1] == target for s in seen), timeout_s=120, what="the new version"
    )
    await wait_until(lambda: all(sum(v == target for _, v in s) >= 5 for s in seen), what="traffic after")
    stop.set()
    await asyncio.gather(*workers)

    for responses in seen:
        assert {status for status, _ in responses} == {200}
        versions = [v for _, v in responses]
        switch = versions.index(target)
        assert set(versions[:switch]) == {before} and set(versions[switch:]) == {target}  # one clean swap
    model = (await api.get("/model")).json()["champion"]
    assert model["model_version"] == target
    assert model["features"] == (list(SMALL) if target == w.small else model["features"])


async def test_a_corrupted_artifact_keeps_the_champion_serving(
    api: httpx.AsyncClient, w: World, observer: Observer
) -> None:
    before = await served_version(api)
    files = model_artifact_files(w.mlflow_uri, MODEL, w.spare)
    assert files, "the spare version has no model file on disk"
    originals = {path: path.read_bytes() for path in files}
    for path in files:
        path.write_bytes(b"this is not a model")
    try:
        await _a_broken_champion_is_refused(api, w, observer, before)
    finally:  # the world is shared by the process's modules (test_batch_scoring loads its champion)
        for path, content in originals.items():
            path.write_bytes(content)
        await asyncio.to_thread(_set_champion, w, before)


def _set_champion(w: World, version: str) -> None:
    mlflow_env()
    import mlflow

    mlflow.MlflowClient(w.mlflow_uri).set_registered_model_alias(MODEL, "champion", version)


async def _a_broken_champion_is_refused(
    api: httpx.AsyncClient, w: World, observer: Observer, before: str
) -> None:
    failed = (
        REGISTRY.get_sample_value("serving_model_loads_total", {"alias": "champion", "outcome": "failed"})
        or 0
    )
    statuses: list[int] = []
    await promote(w, observer.publisher, w.spare)

    def load_failed() -> bool:
        value = REGISTRY.get_sample_value(
            "serving_model_loads_total", {"alias": "champion", "outcome": "failed"}
        )
        return (value or 0) > failed

    entity = next(iter(w.rows))
    while not load_failed():
        response = await api.post("/predict", json={"entity_id": entity})
        statuses.append(response.status_code)
        assert response.json()["model_version"] == before
        await asyncio.sleep(0.05)
    response = await api.post("/predict", json={"entity_id": entity})
    assert response.status_code == 200 and response.json()["model_version"] == before
    assert set(statuses) <= {200} and await served_version(api) == before
    metrics = await api.get("/metrics", headers={"X-API-Key": w.keys["ops"]})
    assert 'serving_model_loads_total{alias="champion",outcome="failed"}' in metrics.text
