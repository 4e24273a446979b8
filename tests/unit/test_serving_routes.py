"""The serving API through TestClient with fakes for Feast, MLflow and Kafka: predictions by entity
and by features, batches, labels, /model, and every kind of bad input answered with a clear 4xx."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.events import LabelObserved, PredictionMade
from contracts.model import Calibration
from services.serving.app import create_app
from services.serving.domain.model import LoadedModel
from services.serving.handlers import PendingPrediction
from services.serving.settings import ServingSettings
from tests.unit.test_serving_support import (
    SMALL_FEATURES,
    FakeFeatures,
    FakeRegistry,
    Published,
    api_keys,
    loaded,
    rows,
)
from workbench.serving_devdata import entity_id

E1 = entity_id(1)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    hashed, keys = api_keys(tmp_path)
    return {"file": str(hashed), **keys}


def make_client(keys: dict[str, str], *, champion: bool = True, shadow: bool = False) -> TestClient:
    settings = ServingSettings(
        api_keys_file=Path(keys["file"]), max_batch_size=5, max_body_bytes=4096, recent_predictions=10
    )
    features, published = FakeFeatures(), Published()
    app = create_app(settings, registry=FakeRegistry({}, {}), features=features, publish=published)
    if champion:
        app.state.slot.swap(loaded("7"))
    if shadow:
        app.state.slot.swap(loaded("8", SMALL_FEATURES, c=0.1), shadow=True)
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: no broker, no loading
    client.headers["X-API-Key"] = keys["client"]
    client.features = features  # type: ignore[attr-defined]
    client.published = published  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client(keys: dict[str, str]) -> TestClient:
    return make_client(keys)


def queued(client: TestClient) -> list[PendingPrediction]:
    queue: asyncio.Queue[Any] = client.app.state.outbox._queue  # type: ignore[attr-defined]
    return [queue.get_nowait() for _ in range(queue.qsize())]


def test_predict_by_entity_reads_features_once_and_answers(client: TestClient) -> None:
    response = client.post("/predict", json={"entity_id": E1})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "prediction_id",
        "score",
        "probability",
        "decision",
        "model_name",
        "model_version",
        "out_of_profile",
    }
    assert body["model_name"] == "credit-risk" and body["model_version"] == "7"
    assert 0 < body["score"] < 1 and body["decision"] == ("decline" if body["score"] >= 0.5 else "approve")
    assert client.features.calls == 1  # type: ignore[attr-defined]


def test_predict_by_features_scores_like_by_entity(client: TestClient) -> None:
    by_entity = client.post("/predict", json={"entity_id": E1}).json()
    by_features = client.post("/predict", json={"features": rows()[E1]}).json()
    assert by_features["score"] == pytest.approx(by_entity["score"], abs=1e-12)
    assert by_features["prediction_id"] != by_entity["prediction_id"]


def test_the_prediction_event_carries_features_version_and_latency(client: TestClient) -> None:
    body = client.post("/predict", json={"entity_id": E1}).json()
    [pending] = queued(client)
    [event] = pending.events()
    assert isinstance(event, PredictionMade)
    payload = event.payload
    assert payload.prediction_id == body["prediction_id"] and payload.entity_id == E1
    assert payload.model_version == "7" and payload.score == body["score"] and not payload.shadow
    assert payload.features == rows()[E1] and payload.latency_ms > 0
    assert event.key() == E1.encode()


def test_a_batch_answers_a_list_in_order(client: TestClient) -> None:
    instances = [{"entity_id": entity_id(i)} for i in range(3)] + [{"features": rows()[E1]}]
    response = client.post("/predict", json={"instances": instances})
    assert response.status_code == 200
    body = response.json()
    assert len(body) == 4 and body[3]["score"] == pytest.approx(body[1]["score"], abs=1e-12)
    assert client.features.calls == 1 and len(queued(client)) == 4  # type: ignore[attr-defined]


def test_the_shadow_challenger_is_published_but_not_returned(keys: dict[str, str]) -> None:
    client = make_client(keys, shadow=True)
    body = client.post("/predict", json={"entity_id": E1}).json()
    assert body["model_version"] == "7"
    champion, shadow = queued(client)[0].events()
    assert shadow.payload.shadow and shadow.payload.model_version == "8"  # type: ignore[attr-defined]
    assert shadow.payload.prediction_id == champion.payload.prediction_id  # type: ignore[attr-defined]
    assert set(shadow.payload.features) == set(SMALL_FEATURES)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"entity_id": "app-unknown"}, 404, "no features in the online store"),
        ({"instances": [{"entity_id": E1}, {"entity_id": "nobody"}]}, 404, "(instance 1)"),
        ({"features": {"duration_in_month": 12}}, 422, "invalid feature"),
        ({"features": {**rows()[E1], "duration_in_month": "twelve"}}, 422, "invalid feature"),
        ({"features": {**rows()[E1], "salary": 1000}}, 422, "invalid feature"),
        ({"features": {**rows()[E1], "age_in_years": None}}, 422, "age_in_years"),
        ({"features": {**rows()[E1], "credit_amount": True}}, 422, "credit_amount"),
        ({"entity_id": E1, "debug": True}, 422, "Extra inputs are not permitted"),
        ({"entity_id": E1, "features": rows()[E1]}, 422, "exactly one"),
        ({}, 422, "exactly one"),
        ({"entity_id": 42}, 422, "string"),
        ({"entity_id": ""}, 422, "at least 1"),
        ({"instances": []}, 422, "at least 1"),
        ({"instances": [{"entity_id": E1, "x": 1}]}, 422, "Extra inputs"),
        ({"instances": [{"entity_id": E1}] * 6}, 413, "at most 5"),
        ([{"entity_id": E1}], 422, "should be an object"),
    ],
)
def test_bad_predict_input_gets_a_clear_4xx(client: TestClient, body: Any, status: int, needle: str) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    assert needle in response.text
    assert queued(client) == []


def test_wrong_features_name_each_field(client: TestClient) -> None:
    features = {**rows()[E1], "duration_in_month": "x", "salary": 1}
    del features["purpose"]
    errors = client.post("/predict", json={"features": features}).json()["errors"]
    assert {(e["field"], e["code"]) for e in errors} == {
        ("features.duration_in_month", "wrong_type"),
        ("features.purpose", "missing"),
        ("features.salary", "unknown"),
    }


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b'{"entity_id": NaN}', b'{"features": {"credit_amount": Infinity}}', b"\xff\xfe"],
)
def test_bodies_that_are_not_json_get_422(client: TestClient, raw: bytes) -> None:
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_a_body_too_large_gets_413(client: TestClient) -> None:
    response = client.post("/predict", json={"entity_id": "x" * 5000})
    assert response.status_code == 413 and "4096 bytes" in response.json()["detail"]


def test_the_document_states_this_apps_limits_and_the_route_enforces_them(client: TestClient) -> None:
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    instances = body["content"]["application/json"]["schema"]["properties"]["instances"]
    assert instances["maxItems"] == 5 and body["description"] == "At most 4096 bytes."
    at_limit = client.post("/predict", json={"instances": [{"entity_id": E1}] * 5})
    over = client.post("/predict", json={"instances": [{"entity_id": E1}] * 6})
    assert at_limit.status_code == 200 and over.status_code == 413, (at_limit.text, over.text)
    assert over.json()["code"] == "too_large"


def test_the_document_says_exactly_one_way_to_name_an_application(client: TestClient) -> None:
    """What the validator enforces, the schema says (oneOf): the fuzzer found it did not."""
    schema = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    schema = schema["content"]["application/json"]["schema"]
    assert schema["oneOf"] == [
        {"required": ["entity_id"]},
        {"required": ["features"]},
        {"required": ["instances"]},
    ]
    for refused in ({}, {"entity_id": E1, "features": rows()[E1]}, {"instances": [{}]}):
        response = client.post("/predict", json=refused)
        assert response.status_code == 422 and "exactly one" in response.json()["detail"], response.text


def test_422_does_not_echo_the_values_sent(client: TestClient) -> None:
    response = client.post("/predict", json={"features": {**rows()[E1], "purpose": 12345678}})
    assert response.status_code == 422 and "12345678" not in response.text
    response = client.post("/predict", json={"entity_id": E1, "secret": "4111-1111-1111-1111"})
    assert response.status_code == 422 and "4111" not in response.text


def test_no_champion_yet_is_a_503_with_a_reason(keys: dict[str, str]) -> None:
    client = make_client(keys, champion=False)
    response = client.post("/predict", json={"entity_id": E1})
    assert response.status_code == 503 and "no champion" in response.json()["detail"]
    assert client.get("/model").json() == {"champion": None, "shadow": None}


def test_the_feature_store_failing_is_a_503(client: TestClient) -> None:
    def broken(*_: Any) -> None:
        raise OSError("disk gone")

    client.features.read = broken  # type: ignore[attr-defined]
    response = client.post("/predict", json={"entity_id": E1})
    assert response.status_code == 503 and "online feature read failed" in response.json()["detail"]


def test_labels_publish_label_observed_keyed_by_the_predicted_entity(client: TestClient) -> None:
    prediction = client.post("/predict", json={"entity_id": E1}).json()
    response = client.post("/labels", json={"prediction_id": prediction["prediction_id"], "label": "bad"})
    assert response.status_code == 202
    [(event, topic)] = client.published.events  # type: ignore[attr-defined]
    assert isinstance(event, LabelObserved) and topic == "labels.observed"
    assert event.payload.entity_id == E1 and event.payload.label == "bad"
    assert event.payload.prediction_id == prediction["prediction_id"]
    assert response.json() == {
        "event_id": str(event.event_id),
        "prediction_id": prediction["prediction_id"],
        "entity_id": E1,
    }


def test_labels_for_predictions_by_features_are_keyed_by_the_prediction_id(
    client: TestClient, keys: dict[str, str]
) -> None:
    made = client.post("/predict", json={"features": rows()[E1]}).json()["prediction_id"]
    producer = {"X-API-Key": keys["producer"]}
    response = client.post("/labels", json={"prediction_id": made, "label": "good"}, headers=producer)
    assert response.status_code == 202
    [(event, _)] = client.published.events  # type: ignore[attr-defined]
    assert event.payload.entity_id == made == response.json()["entity_id"]


@pytest.mark.parametrize(
    "body",
    [
        {"prediction_id": "p", "label": "maybe"},
        {"prediction_id": "p", "label": 1},
        {"label": "good"},
        {"prediction_id": "", "label": "good"},
        {"prediction_id": "p", "label": "good", "extra": 1},
    ],
)
def test_bad_labels_get_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/labels", json=body).status_code == 422
    assert client.published.events == []  # type: ignore[attr-defined]


def test_kafka_down_makes_labels_a_503_and_the_label_may_be_sent_again(client: TestClient) -> None:
    made = client.post("/predict", json={"entity_id": E1}).json()["prediction_id"]
    client.published.fail = 1  # type: ignore[attr-defined]
    response = client.post("/labels", json={"prediction_id": made, "label": "good"})
    assert response.status_code == 503 and "could not publish the label" in response.json()["detail"]
    assert client.post("/labels", json={"prediction_id": made, "label": "bad"}).status_code == 202


def test_model_tells_any_role_what_is_served(client: TestClient, keys: dict[str, str]) -> None:
    for role in ("producer", "client", "ops", "auditor", "admin"):
        response = client.get("/model", headers={"X-API-Key": keys[role]})
        assert response.status_code == 200
    champion = response.json()["champion"]
    assert champion["model_version"] == "7" and champion["scorer"] == "linear"
    assert champion["threshold"] == 0.5 and len(champion["features"]) == 20


@pytest.mark.parametrize(
    ("method", "path", "body", "admitted"),
    [
        ("post", "/predict", {"entity_id": E1}, {"client", "admin"}),
        ("post", "/labels", {"prediction_id": "p", "label": "good"}, {"producer", "client", "admin"}),
        ("get", "/model", None, {"producer", "client", "ops", "auditor", "admin"}),
    ],
)
def test_every_route_needs_a_valid_key_and_role(
    client: TestClient, keys: dict[str, str], method: str, path: str, body: Any, admitted: set[str]
) -> None:
    call = getattr(client, method)
    if path == "/labels":  # a label must name a prediction the service made
        made = client.post("/predict", json={"entity_id": E1}, headers={"X-API-Key": keys["client"]})
        body = {**body, "prediction_id": made.json()["prediction_id"]}
    kwargs = {"json": body} if body is not None else {}
    assert call(path, headers={"X-API-Key": ""}, **kwargs).status_code == 401
    assert call(path, headers={"X-API-Key": "mlops_wrong"}, **kwargs).status_code == 401
    for role in ("producer", "client", "ops", "auditor", "admin"):
        status = call(path, headers={"X-API-Key": keys[role]}, **kwargs).status_code
        assert (status < 400) == (role in admitted), (role, status)
        if role not in admitted:
            assert status == 403


def calibrated(model: LoadedModel, slope: float, intercept: float) -> LoadedModel:
    """`model` with a Platt calibration on its card (as training logs it)."""
    assert model.card is not None
    calibration = Calibration(
        slope=slope,
        intercept=intercept,
        fitted_rows=800,
        holdout_ece_before=0.1,
        holdout_ece_after=0.02,
        holdout_brier_before=0.2,
        holdout_brier_after=0.18,
    )
    return dataclasses.replace(model, card=model.card.model_copy(update={"calibration": calibration}))


def test_an_uncalibrated_champion_publishes_no_probability(client: TestClient) -> None:
    body = client.post("/predict", json={"entity_id": E1}).json()
    [event] = queued(client)[0].events()
    assert body["probability"] is None and event.payload.probability is None  # type: ignore[attr-defined]


def test_the_calibrated_probability_is_the_card_s_map_of_the_score(keys: dict[str, str]) -> None:
    """Issue 19: the event (and the answer) carry the card's calibration applied to the score, for
    champion and shadow alike; the score and the decision stay the model's own."""
    client = make_client(keys, champion=False)
    champion, shadow = (
        calibrated(loaded("7"), 1.6, -0.2),
        calibrated(loaded("8", SMALL_FEATURES, c=0.1), 0.7, 0.3),
    )
    client.app.state.slot.swap(champion)  # type: ignore[attr-defined]
    client.app.state.slot.swap(shadow, shadow=True)  # type: ignore[attr-defined]
    body = client.post("/predict", json={"entity_id": E1}).json()
    assert champion.card is not None and champion.card.calibration is not None
    expected = champion.card.calibration.apply(body["score"])
    assert body["probability"] == expected and body["probability"] != body["score"]
    assert body["decision"] == champion.decide(body["score"])
    made, shadowed = queued(client)[0].events()
    assert made.payload.probability == expected  # type: ignore[attr-defined]
    assert shadow.card is not None and shadow.card.calibration is not None
    shadow_score = shadowed.payload.score  # type: ignore[attr-defined]
    assert shadowed.payload.probability == shadow.card.calibration.apply(shadow_score)  # type: ignore[attr-defined]
    assert 0 < shadowed.payload.probability < 1  # type: ignore[attr-defined]
