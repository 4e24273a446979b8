"""Serving guards learning: labels must name a prediction it made (for its entity, once), feature values
outside the champion's training profile are refused or flagged, and a 404 never echoes an entity id."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.events import LabelObserved
from services.serving.app import create_app
from services.serving.errors import DependencyUnavailable, LabelConflict, UnknownPrediction
from services.serving.labels import LabelHandler, RecentPredictions
from services.serving.settings import ServingSettings
from tests.unit.test_serving_routes import queued
from tests.unit.test_serving_support import (
    FakeFeatures,
    FakeRegistry,
    Published,
    api_keys,
    card,
    loaded,
    rows,
)
from workbench.serving_devdata import entity_id

E1, E2 = entity_id(1), entity_id(2)
PROFILE = card().profile


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    hashed, keys = api_keys(tmp_path)
    return {"file": str(hashed), **keys}


def make_client(
    keys: dict[str, str],
    *,
    policy: str = "refuse",
    profiled: bool = True,
    features: FakeFeatures | None = None,
) -> TestClient:
    settings = ServingSettings(
        api_keys_file=Path(keys["file"]),
        recent_predictions=10,
        out_of_profile=policy,  # type: ignore[arg-type]
    )
    published = Published()
    app = create_app(
        settings, registry=FakeRegistry({}, {}), features=features or FakeFeatures(), publish=published
    )
    app.state.slot.swap(loaded("7", profiled=profiled))
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["X-API-Key"] = keys["client"]
    client.published = published  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client(keys: dict[str, str]) -> TestClient:
    return make_client(keys)


def predict(client: TestClient, **body: Any) -> str:
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["prediction_id"])


def labels_published(client: TestClient) -> list[LabelObserved]:
    return [e for e, _ in client.published.events if isinstance(e, LabelObserved)]  # type: ignore[attr-defined]


# --- labels -----------------------------------------------------------------------------------------


def test_a_label_for_a_prediction_never_made_is_404_and_not_published(client: TestClient) -> None:
    response = client.post("/labels", json={"prediction_id": "0" * 32, "label": "bad", "entity_id": E1})
    assert response.status_code == 404 and "no prediction with this id" in response.json()["detail"]
    assert labels_published(client) == []


def test_a_label_for_another_entity_is_409_and_not_published(client: TestClient) -> None:
    made = predict(client, entity_id=E1)
    response = client.post("/labels", json={"prediction_id": made, "label": "bad", "entity_id": E2})
    assert response.status_code == 409 and "not the entity" in response.json()["detail"]
    assert E2 not in response.text and labels_published(client) == []


def test_a_label_naming_an_entity_for_a_prediction_by_features_is_409(client: TestClient) -> None:
    made = predict(client, features=rows()[E1])
    response = client.post("/labels", json={"prediction_id": made, "label": "good", "entity_id": E1})
    assert response.status_code == 409 and labels_published(client) == []


def test_the_same_label_twice_is_accepted_once_and_published_once(client: TestClient) -> None:
    made = predict(client, entity_id=E1)
    first = client.post("/labels", json={"prediction_id": made, "label": "bad", "entity_id": E1})
    again = client.post("/labels", json={"prediction_id": made, "label": "bad"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    [event] = labels_published(client)
    assert str(event.event_id) == first.json()["event_id"] and event.payload.entity_id == E1


def test_a_different_label_for_a_labelled_prediction_is_409(client: TestClient) -> None:
    made = predict(client, entity_id=E1)
    assert client.post("/labels", json={"prediction_id": made, "label": "bad"}).status_code == 202
    response = client.post("/labels", json={"prediction_id": made, "label": "good"})
    assert response.status_code == 409 and "already labelled 'bad'" in response.json()["detail"]
    assert [e.payload.label for e in labels_published(client)] == ["bad"]


def test_predictions_older_than_the_record_can_no_longer_be_labelled(client: TestClient) -> None:
    oldest = predict(client, entity_id=E1)
    for _ in range(10):  # recent_predictions=10
        predict(client, entity_id=E2)
    assert client.post("/labels", json={"prediction_id": oldest, "label": "bad"}).status_code == 404


class SlowPublish:
    """Kafka that acknowledges when told to, or fails."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self, event: Any) -> None:
        await self.release.wait()
        if self.fail:
            raise ConnectionError("broker down")
        self.events.append(event)


@pytest.mark.parametrize("fail", [False, True])
async def test_concurrent_repeats_share_one_publication(fail: bool) -> None:
    recent, publish = RecentPredictions(5), SlowPublish()
    recent.remember("p1", "app-1")
    handler = LabelHandler(publish, recent, "loans", "serving")
    calls = [asyncio.create_task(handler.observe("p1", "good", None)) for _ in range(3)]
    await asyncio.sleep(0.01)
    publish.fail = fail
    publish.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    if fail:
        assert all(isinstance(r, DependencyUnavailable) for r in results) and publish.events == []
        publish.fail = False
        retried = await handler.observe("p1", "bad", None)  # nothing was recorded: the client may retry
        assert publish.events == [retried]
    else:
        assert len({id(r) for r in results}) == 1 and len(publish.events) == 1


async def test_the_handler_refuses_unknown_and_mismatched_labels() -> None:
    recent, publish = RecentPredictions(5), SlowPublish()
    recent.remember("p1", "app-1")
    handler = LabelHandler(publish, recent, "loans", "serving")
    with pytest.raises(UnknownPrediction):
        await handler.observe("p2", "good", "app-1")
    with pytest.raises(LabelConflict):
        await handler.observe("p1", "good", "app-2")
    assert publish.events == []


# --- the training profile ---------------------------------------------------------------------------

HOSTILE = [
    ("duration_in_month", -(10**18)),
    ("duration_in_month", 10**30),
    ("duration_in_month", int(PROFILE["duration_in_month"].maximum or 0) + 1),
    ("credit_amount", -1e18),
    ("credit_amount", 1e30),
    ("age_in_years", -1),
    ("purpose", "yacht"),
    ("purpose", ""),
    ("housing", "x" * 256),
]


@pytest.mark.parametrize(("feature", "value"), HOSTILE, ids=[f"{f}={str(v)[:12]}" for f, v in HOSTILE])
def test_values_outside_the_training_profile_are_refused_with_422_naming_the_feature(
    client: TestClient, feature: str, value: Any
) -> None:
    response = client.post("/predict", json={"features": {**rows()[E1], feature: value}})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error == {"field": f"features.{feature}", "code": "out_of_profile", "message": error["message"]}
    assert "training" in error["message"]
    echo = str(value)[:10]
    assert len(echo) < 4 or echo not in response.text  # the value sent is not echoed back
    assert queued(client) == [] and client.published.events == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"features": {"credit_amount": 1e400}}',
        b'{"features": {"credit_amount": -1e400}}',
        b'{"features": {"credit_amount": NaN}}',
        b'{"features": {"purpose": "' + b"x" * 100_000 + b'"}}',
    ],
)
def test_non_finite_numbers_and_huge_strings_never_reach_the_model(keys: dict[str, str], raw: bytes) -> None:
    client = make_client(keys)
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (413, 422) and queued(client) == []


def test_the_edges_of_the_profile_are_inside(client: TestClient) -> None:
    edges = {name: PROFILE[name].maximum for name in ("duration_in_month", "age_in_years")}
    features = {**rows()[E1], **{k: int(v or 0) for k, v in edges.items()}}
    features["credit_amount"] = PROFILE["credit_amount"].minimum
    response = client.post("/predict", json={"features": features})
    assert response.status_code == 200 and response.json()["out_of_profile"] == []


def test_one_bad_instance_refuses_the_batch_and_names_its_position(client: TestClient) -> None:
    bad = {**rows()[E1], "age_in_years": 400}
    response = client.post("/predict", json={"instances": [{"entity_id": E1}, {"features": bad}]})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "features.age_in_years" and error["message"].startswith("instance 1:")
    assert queued(client) == []


def test_the_flag_policy_scores_and_names_the_features(keys: dict[str, str]) -> None:
    client = make_client(keys, policy="flag")
    features = {**rows()[E1], "credit_amount": 1e30, "purpose": "yacht"}
    response = client.post("/predict", json={"features": features})
    assert response.status_code == 200
    assert sorted(response.json()["out_of_profile"]) == ["credit_amount", "purpose"]
    [pending] = queued(client)  # scored, served and published, flagged
    assert sorted(pending.prediction.out_of_profile) == ["credit_amount", "purpose"]


def test_values_read_online_are_flagged_never_refused(keys: dict[str, str]) -> None:
    data = dict(rows())
    data[E1] = {**data[E1], "credit_amount": 1e9}
    client = make_client(keys, features=FakeFeatures(data))
    response = client.post("/predict", json={"entity_id": E1})
    assert response.status_code == 200 and response.json()["out_of_profile"] == ["credit_amount"]
    assert client.post("/predict", json={"entity_id": E2}).json()["out_of_profile"] == []


def test_a_legacy_champion_without_a_profile_refuses_feature_values_but_serves_entities(
    keys: dict[str, str],
) -> None:
    client = make_client(keys, profiled=False)
    response = client.post("/predict", json={"features": rows()[E1]})
    assert response.status_code == 422 and "no training profile" in response.json()["detail"]
    assert client.post("/predict", json={"entity_id": E1}).status_code == 200
    assert client.get("/model").json()["champion"]["profiled"] == []
    flagging = make_client(keys, profiled=False, policy="flag")
    assert flagging.post("/predict", json={"features": rows()[E1]}).status_code == 200


def test_model_lists_the_profiled_features(client: TestClient) -> None:
    champion = client.get("/model").json()["champion"]
    assert champion["profiled"] == sorted(champion["features"])


@pytest.mark.parametrize("entity", ["123-45-6789", "Jane Q. Public", "+44 20 7946 0958"])
def test_an_unknown_entity_is_404_without_echoing_its_id(client: TestClient, entity: str) -> None:
    single = client.post("/predict", json={"entity_id": entity})
    batch = client.post("/predict", json={"instances": [{"entity_id": E1}, {"entity_id": entity}]})
    assert single.status_code == batch.status_code == 404
    for response in (single, batch):
        assert entity not in response.text and entity.split()[0] not in response.text
    assert "(instance 1)" in batch.json()["detail"]


def test_the_fast_profile_check_agrees_with_the_contract_on_random_rows() -> None:
    import random

    model, rng = loaded("7"), random.Random(7)
    base = rows()[E1]
    for _ in range(300):
        row = dict(base)
        for name in rng.sample(sorted(PROFILE), 3):
            profile = PROFILE[name]
            if profile.categories is not None:
                row[name] = rng.choice([*profile.categories, "unseen", ""])
            else:
                low, high = profile.minimum or 0.0, profile.maximum or 0.0
                value = rng.choice([low, high, low - 1, high + 1, float("nan"), float("-inf"), 1e30])
                row[name] = int(value) if isinstance(base[name], int) and abs(value) < 1e18 else value
        expected = {n: r for n in PROFILE if (r := PROFILE[n].violation(row[n])) is not None}
        assert model.out_of_profile(row) == expected
