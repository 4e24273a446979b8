"""`POST /models/{name}/rollback` with fakes: the alias moves back and a ModelPromoted of kind rollback
carries the reason; a retry (same key, or the same request without one) moves nothing; every refusal
is a 4xx with its code; a publish that failed is finished by the retry, with the same event id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.envelope import Event
from contracts.events import GateEvidence, ModelPromoted
from servicekit.auth import Role, write_dev_keys
from services.training.app import create_app
from services.training.domain.gate import Verdict
from services.training.handlers import TrainingService
from services.training.settings import TrainingSettings
from services.training.trainer import Outcome
from tests.support import training_request
from tests.unit.test_training_support import FakeRegistry, FakeSource, feature_frame

ROLLBACK = "/models/credit/rollback"
LINEAGE = {
    "window_start": "2026-01-01T00:00:00+00:00",
    "window_end": "2026-02-01T00:00:00+00:00",
    "dataset_version": "d1",
    "dataset_sha256": "0" * 64,
    "feature_views": "applications",
    "code_version": "c1",
}


class Aliases(FakeRegistry):
    """The champion alias over versions 1..4 (no models behind them)."""

    def version_exists(self, version: str) -> bool:
        return version in {"1", "2", "3", "4"}

    def set_alias(self, alias: str, version: str) -> None:
        if alias != "champion":
            self.others[alias] = version
            return
        self.moves = [*getattr(self, "moves", []), version]
        self.alias = version


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    write_dev_keys(tmp_path / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())
    keys = {v["role"]: v["key"] for v in plain.values()}
    settings = TrainingSettings(
        api_keys_file=tmp_path / "secrets" / "api-keys.hashed.json", state_dir=tmp_path, model_name="credit"
    )
    registry = Aliases()
    app = create_app(settings, source=FakeSource(feature_frame(2)), registry=registry)
    sent: list[tuple[Event[Any], str]] = []

    async def publish(event: Event[Any], topic: str) -> None:
        sent.append((event, topic))

    app.state.training.publish = publish
    app.state.rollbacks.publish = publish
    app.state.canaries.publish = publish
    client = TestClient(app)  # no lifespan: no broker
    client.headers["X-API-Key"] = keys["ops"]
    client.sent, client.registry, client.keys = sent, registry, keys  # type: ignore[attr-defined]
    return client


def promote(client: TestClient, version: str) -> None:
    """What a training run that passed the gate ends with: the alias moved, ModelPromoted published."""
    training: TrainingService = client.app.state.training  # type: ignore[attr-defined]
    registry: Aliases = client.registry  # type: ignore[attr-defined]
    evidence = GateEvidence(checks=[], candidate_metrics={"auc": 0.8}, verdict="promote")
    outcome = Outcome("r", "promoted", run_id=f"run-{version}", model_version=version, lineage=LINEAGE)
    outcome.previous_version, outcome.verdict = registry.alias, Verdict("promote", evidence)
    registry.set_alias("champion", version)
    asyncio.run(training._publish(training_request(), outcome))


def rollbacks(client: TestClient) -> list[ModelPromoted]:
    sent: list[tuple[Event[Any], str]] = client.sent  # type: ignore[attr-defined]
    return [e for e, _ in sent if isinstance(e, ModelPromoted) and e.payload.kind == "rollback"]


def test_rollback_moves_the_champion_back_and_says_why(client: TestClient) -> None:
    promote(client, "1")
    promote(client, "2")
    response = client.post(ROLLBACK, json={"reason": "approval rate fell"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["champion"], body["previous_version"], body["replayed"]) == ("1", "2", False)
    assert client.registry.alias == "1"  # type: ignore[attr-defined]
    [event] = rollbacks(client)
    p = event.payload
    assert (p.model_version, p.previous_version, p.run_id) == ("1", "2", "run-1")
    assert p.reason == "approval rate fell" and p.requested_by and p.requested_by.startswith("ops:")
    assert p.evidence.verdict == "promote" and str(event.event_id) == body["event_id"]
    assert client.sent[-1][1] == TrainingSettings.model_fields["promoted_topic"].default  # type: ignore[attr-defined]


def test_the_same_request_twice_moves_once(client: TestClient) -> None:
    for version in ("1", "2", "3"):
        promote(client, version)
    first = client.post(ROLLBACK, json={"reason": "bad"}, headers={"Idempotency-Key": "k1"})
    again = client.post(ROLLBACK, json={"reason": "bad"}, headers={"Idempotency-Key": "k1"})
    assert (first.json()["champion"], again.json()["champion"]) == ("2", "2")
    assert again.json()["replayed"] and again.json()["event_id"] == first.json()["event_id"]
    no_key = [client.post(ROLLBACK, json={"reason": "worse"}) for _ in range(2)]
    assert [r.json()["champion"] for r in no_key] == ["1", "1"] and no_key[1].json()["replayed"]
    assert client.registry.moves == ["1", "2", "3", "2", "1"]  # type: ignore[attr-defined]
    assert len(rollbacks(client)) == 2
    reused = client.post(ROLLBACK, json={"reason": "other"}, headers={"Idempotency-Key": "k1"})
    assert (reused.status_code, reused.json()["code"]) == (409, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"reason": "x", "to_version": 9}, 404, "unknown_version"),
        ({"reason": "x", "to_version": 2}, 409, "already_champion"),
        ({"reason": "x", "to_version": 4}, 409, "never_champion"),
    ],
)
def test_refusals_name_their_rule(client: TestClient, body: dict[str, Any], status: int, code: str) -> None:
    promote(client, "1")
    promote(client, "2")
    response = client.post(ROLLBACK, json=body)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert client.registry.alias == "2" and not rollbacks(client)  # type: ignore[attr-defined]


def test_refused_without_an_earlier_champion_or_a_known_model(client: TestClient) -> None:
    response = client.post(ROLLBACK, json={"reason": "x"})
    assert (response.status_code, response.json()["code"]) == (409, "no_champion")
    promote(client, "1")
    response = client.post(ROLLBACK, json={"reason": "x"})
    assert (response.status_code, response.json()["code"]) == (409, "no_earlier_champion")
    response = client.post("/models/other/rollback", json={"reason": "x"})
    assert (response.status_code, response.json()["code"]) == (404, "unknown_model")


@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": "x", "to_version": 0}]
)
def test_a_reason_is_required_and_bounded(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post(ROLLBACK, json=body).status_code == 422


def test_only_ops_and_admin_may_roll_back(client: TestClient) -> None:
    keys: dict[str, str] = client.keys  # type: ignore[attr-defined]
    for role in ("producer", "client", "auditor"):
        assert (
            client.post(ROLLBACK, json={"reason": "x"}, headers={"X-API-Key": keys[role]}).status_code == 403
        )


def test_a_failed_publish_is_finished_by_the_retry(client: TestClient) -> None:
    promote(client, "1")
    promote(client, "2")
    rollbacks_use_case = client.app.state.rollbacks  # type: ignore[attr-defined]
    working = rollbacks_use_case.publish

    async def broken(event: Event[Any], topic: str) -> None:
        raise ConnectionError("kafka down")

    rollbacks_use_case.publish = broken
    failed = client.post(ROLLBACK, json={"reason": "bad"}, headers={"Idempotency-Key": "k"})
    assert failed.status_code == 503 and failed.json()["code"] == "unavailable"  # the broker is away
    assert not rollbacks(client)
    rollbacks_use_case.publish = working
    retry = client.post(ROLLBACK, json={"reason": "bad"}, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 200 and retry.json()["replayed"]
    [event] = rollbacks(client)
    assert str(event.event_id) == retry.json()["event_id"] and client.registry.alias == "1"  # type: ignore[attr-defined]
    again = client.post(ROLLBACK, json={"reason": "bad"}, headers={"Idempotency-Key": "k"})
    assert again.json()["champion"] == "1" and len(rollbacks(client)) == 1
