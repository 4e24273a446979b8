"""The explain API through TestClient with a fake registry and captured events: by prediction id and
by raw values, fidelity reported, events published, global explanations on promotion, and every kind
of bad input answered with a clear 4xx (a timeout with 504, the service still answering)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.events import (
    ExplanationProduced,
    GateEvidence,
    ModelPromoted,
    ModelPromotedPayload,
    PredictionMade,
    PredictionMadePayload,
)
from services.explain.app import create_app
from services.explain.domain.model import Contribution, ExplainableModel, Scalar
from services.explain.settings import ExplainSettings
from tests.unit.test_explain_support import FakeModels, Published, reference_model
from tests.unit.test_serving_support import api_keys


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    hashed, keys = api_keys(tmp_path)
    return {"file": str(hashed), **keys}


def make_client(keys: dict[str, str], tmp_path: Path, engine: Any = None, **overrides: Any) -> TestClient:
    settings = ExplainSettings(api_keys_file=Path(keys["file"]), state_dir=tmp_path / "state", **overrides)
    models, published = FakeModels({"7": reference_model("7")}, champion="7"), Published()
    app = create_app(settings, models=models, engine=engine, publish=published)
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: no broker
    client.headers["X-API-Key"] = keys["client"]
    client.published = published  # type: ignore[attr-defined]
    client.models = models  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client(keys: dict[str, str], tmp_path: Path) -> TestClient:
    return make_client(keys, tmp_path)


def row(index: int = 0) -> dict[str, Scalar]:
    m = reference_model()
    return {
        k: (v.item() if hasattr(v, "item") else v)
        for k, v in m.reference[m.feature_names].iloc[index].items()
    }


def record_prediction(client: TestClient, prediction_id: str, version: str = "7") -> None:
    event = PredictionMade.create(
        PredictionMadePayload(
            prediction_id=prediction_id,
            entity_id="app-00001",
            model_name="credit-risk",
            model_version=version,
            score=0.3,
            decision="approve",
            features={**row(1), "telephone": "A191"},
            latency_ms=1.0,
        ),
        producer="serving",
    )
    asyncio.run(client.app.state.recorder.on_prediction(event))  # type: ignore[attr-defined]


def test_explain_by_prediction_id_uses_its_version_reports_fidelity_and_publishes(client: TestClient) -> None:
    record_prediction(client, "p-1")
    response = client.get("/explain/p-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "7" and body["prediction_id"] == "p-1"
    assert body["methods"] == ["shap", "lime", "counterfactual"]
    assert body["fidelity"]["shap_additive"] is True
    assert body["fidelity"]["shap_additivity_error"] < 1e-3
    assert "lime_r2" in body["fidelity"] and "lime_faithful" in body["fidelity"]
    shap = body["shap"]
    total = shap["base_value"] + sum(c["contribution"] for c in shap["contributions"])
    assert total == pytest.approx(__import__("math").log(body["p_bad"] / (1 - body["p_bad"])), abs=1e-3)
    assert shap["algorithm"] == "exact_linear"  # the reference pipeline is logistic
    assert body["summary"].startswith("The application was")
    [(event, topic)] = client.published  # type: ignore[attr-defined]
    assert isinstance(event, ExplanationProduced) and topic == "explanation.produced"
    assert event.payload.scope == "local" and event.payload.prediction_id == "p-1"
    assert event.payload.model_version == "7" and event.payload.fidelity == body["fidelity"]
    assert event.payload.shap_algorithm == "exact_linear"


def test_kernel_shap_when_exact_linear_shap_is_switched_off(keys: dict[str, str], tmp_path: Path) -> None:
    client = make_client(keys, tmp_path, exact_linear_shap=False)
    response = client.post("/explain", json={"features": row(3), "methods": ["shap"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["shap"]["algorithm"] == "kernel" and body["fidelity"]["shap_additive"] is True
    [(event, _)] = client.published  # type: ignore[attr-defined]
    assert event.payload.shap_algorithm == "kernel"


def test_explain_raw_values_with_the_champion_and_chosen_methods(client: TestClient) -> None:
    response = client.post("/explain", json={"features": row(2), "methods": ["lime"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "7" and body["methods"] == ["lime"] and body["shap"] is None


@pytest.mark.parametrize("role", ["ops", "auditor", "admin"])
def test_ops_and_auditors_may_explain_any_prediction(
    client: TestClient, keys: dict[str, str], role: str
) -> None:
    record_prediction(client, "p-2")
    response = client.get("/explain/p-2?methods=shap", headers={"X-API-Key": keys[role]})
    assert response.status_code == 200


def test_bad_requests_get_clear_4xx(client: TestClient, keys: dict[str, str]) -> None:
    record_prediction(client, "p-old", version="3")  # a version the registry no longer has
    cases = [
        (client.get("/explain/nope"), 404, "no prediction 'nope'"),
        (client.get("/explain/p-old"), 410, "version 3 is no longer in the registry"),
        # Named by the caller, a version the registry lacks is not found (the fuzzer's "validation
        # mismatch": a schema-valid request refused with 410 as if it had existed).
        (client.post("/explain", json={"features": row(), "model_version": "3"}), 404, "not in the registry"),
        (client.post("/explain", json={"features": {**row(), "credit_amount": "lots"}}), 422, "rejected"),
        (client.post("/explain", json={"features": row(), "methods": ["magic"]}), 422, "'shap', 'lime'"),
        (client.post("/explain", json={"features": row(), "methods": []}), 422, "at least 1 item"),
        (client.post("/explain", json={}), 422, "Field required"),
        (client.post("/explain", json={"prediction_id": "p-old", "features": row()}), 422, "Extra inputs"),
        (client.post("/explain", json={"prediction_id": "p-old", "model_version": "3"}), 422, "Extra inputs"),
        (client.post("/explain", json={"features": row(), "model_version": "v3"}), 422, "pattern"),
        (client.post("/explain", json={"features": {"age": {"nested": 1}}}), 422, "valid string"),
        (client.get("/explain/p-old?methods=shap,magic"), 422, "pattern"),
        (client.get("/explanations/global/latest"), 422, "pattern"),
        (client.get("/explain/p-old", headers={"X-API-Key": keys["producer"]}), 403, "may not call this"),
        (client.get("/explain/p-old", headers={"X-API-Key": "wrong"}), 401, "invalid API key"),
    ]
    for response, status, text in cases:
        assert response.status_code == status, response.text
        assert text in str(response.json()["detail"]), response.text
    assert client.published == []  # type: ignore[attr-defined]


class SlowEngine:
    """Blocks until released: an explanation that never finishes in time."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def shap(
        self, model: ExplainableModel, instance: dict[str, Scalar]
    ) -> tuple[list[Contribution], float, str]:
        self.release.wait(30)
        return [], 0.0, "kernel"

    def lime(
        self, model: ExplainableModel, instance: dict[str, Scalar]
    ) -> tuple[list[Contribution], float, float]:
        return [], 1.0, 0.0


def test_a_timed_out_explanation_gets_504_and_the_service_keeps_answering(
    keys: dict[str, str], tmp_path: Path
) -> None:
    engine = SlowEngine()
    client = make_client(keys, tmp_path, engine=engine, timeout_s=0.3)
    try:
        response = client.post("/explain", json={"features": row(), "methods": ["shap"]})
        assert response.status_code == 504
        assert "did not finish within 0.3 s" in response.json()["detail"]
        assert client.get("/health").status_code == 200
        ok = client.post("/explain", json={"features": row(), "methods": ["lime"]})
        assert ok.status_code == 200  # the second worker still serves others
    finally:
        engine.release.set()


def test_promotion_stores_global_explanations_and_publishes(client: TestClient) -> None:
    event = ModelPromoted.create(
        ModelPromotedPayload(
            model_name="credit-risk",
            model_version="7",
            run_id="run-7",
            evidence=GateEvidence(checks=[], candidate_metrics={}),
        ),
        producer="training",
    )
    handler = client.app.state.global_handler  # type: ignore[attr-defined]
    uri = asyncio.run(handler.on_promoted(event))
    assert uri == "runs:/run-7/explanations/global-v7"
    files = client.models.logged["7"]  # type: ignore[attr-defined]
    assert "global.json" in files and "importance.png" in files and any(f.startswith("pdp_") for f in files)
    [(produced, _)] = client.published  # type: ignore[attr-defined]
    assert produced.payload.scope == "global" and produced.payload.artifact_uri == uri
    assert produced.payload.summary.startswith("Model version 7 relies most on")
    assert asyncio.run(handler.on_promoted(event)) == uri  # redelivered: nothing recomputed or republished
    assert len(client.published) == 1  # type: ignore[attr-defined]
    assert client.get("/explanations/global/7").json()["artifact_uri"] == uri
