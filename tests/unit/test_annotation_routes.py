"""The annotation service's routes without Kafka (the app's lifespan is not run): the webhook route's
key, size limit and answers (202, 422 with the reason, 409), each authenticated body appended to the
raw topic first; the ops view of the queue, and the roles every route admits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from servicekit.auth import Role, hash_key
from services.annotation.app import create_app, pseudonym_key, webhook_key
from services.annotation.settings import AnnotationSettings
from tests.unit.annotation_world import FakeLabelStudio, FakeThresholds, made

KEYS = {role: f"mlops_test_{role.value}" for role in Role}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, FakeLabelStudio, list[tuple[bytes, bytes | None]]]:
    entries = [{"name": r.value, "role": r.value, "sha256": hash_key(k)} for r, k in KEYS.items()]
    policy = tmp_path / "policy.yaml"
    policy.write_text("audit: {share: 0}\nfairness: {share: 0}\n")
    settings = AnnotationSettings(
        state_dir=tmp_path, api_keys_json=json.dumps(entries), policy_file=policy, max_webhook_bytes=2048
    )
    ls = FakeLabelStudio()
    app = create_app(settings, label_studio=ls, thresholds=FakeThresholds({("credit-risk", "3"): 0.3}))
    appended: list[tuple[bytes, bytes | None]] = []

    async def append(body: bytes, key: bytes | None) -> None:
        appended.append((body, key))

    app.state.append_webhook = append
    app.state.labels.pseudonym_key = b"k" * 32
    asyncio.run(app.state.intake.on_predictions([made("p-1", 0.3)]))
    asyncio.run(app.state.sync.sync_once())
    return TestClient(app), ls, appended


def test_the_webhook_needs_the_webhook_key_and_that_key_opens_nothing_else(setup: Any) -> None:
    client, _, appended = setup
    body = {"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 100}}
    assert client.post("/label-studio/webhook", json=body).status_code == 401
    assert client.post("/label-studio/webhook", json=body, headers={"X-API-Key": "forged"}).status_code == 401
    for role in (Role.CLIENT, Role.PRODUCER, Role.OPS):
        other = {"X-API-Key": KEYS[role]}
        assert client.post("/label-studio/webhook", json=body, headers=other).status_code == 403
    assert appended == []  # nothing unauthenticated reaches the bus
    webhook = {"X-API-Key": KEYS[Role.WEBHOOK]}
    assert client.get("/tasks", headers=webhook).status_code == 403  # Label Studio's admin reads it there


def test_the_webhook_answers_accepted_malformed_replayed_and_too_large(setup: Any) -> None:
    client, ls, appended = setup
    headers = {"X-API-Key": KEYS[Role.WEBHOOK]}
    annotation = ls.annotate(100, "bad")
    body = json.dumps({"action": "ANNOTATION_CREATED", "annotation": annotation}).encode()
    accepted = client.post("/label-studio/webhook", content=body, headers=headers)
    assert accepted.status_code == 202 and accepted.json()["task_id"] == 100
    malformed = client.post("/label-studio/webhook", content=b"{nope", headers=headers)
    assert malformed.status_code == 422 and malformed.json()["code"] == "not_json"
    stranger = json.dumps({"action": "ANNOTATION_CREATED", "annotation": {"id": 5, "task": 777}}).encode()
    assert (
        client.post("/label-studio/webhook", content=stranger, headers=headers).json()["code"]
        == "unknown_task"
    )
    huge = client.post("/label-studio/webhook", content=b"x" * 4096, headers=headers)
    assert huge.status_code == 413
    assert [key for _, key in appended] == [b"100", None, b"777"]  # too large: not appended
    client.app.state.webhooks.store.remembered.mark_webhook_seen(
        annotation["id"], annotation["updated_at"], "annotation.webhooks:0:0"
    )
    replayed = client.post("/label-studio/webhook", content=body, headers=headers)
    assert replayed.status_code == 409 and replayed.json()["code"] == "replayed"


def test_ops_see_the_queue_and_one_task(setup: Any) -> None:
    client, _, _ = setup
    ops = {"X-API-Key": KEYS[Role.OPS]}
    overview = client.get("/tasks", headers=ops).json()
    assert overview["counts"] == {
        "queued": 0,
        "open": 1,
        "disputed": 0,
        "labelled": 0,
        "superseded": 0,
        "expired": 0,
    }
    assert overview["label_studio"]["reachable"] is True and overview["label_studio"]["last_sync"]
    assert overview["label_studio"]["webhooks"].startswith("off")
    [recent] = overview["recent"]
    assert recent["reasons"] == ["uncertain"] and recent["task_id"] == 100 and recent["state"] == "open"
    assert client.get("/tasks/p-1", headers=ops).json()["prediction_id"] == "p-1"
    missing = client.get("/tasks/p-none", headers=ops)
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_task"
    assert client.get("/tasks", headers={"X-API-Key": KEYS[Role.CLIENT]}).status_code == 403


def test_every_route_declares_its_roles(setup: Any) -> None:
    client, _, _ = setup
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/label-studio/webhook"]["post"]["x-roles"] == ["admin", "webhook"]
    assert (
        paths["/tasks"]["get"]["x-roles"]
        == paths["/tasks/{prediction_id}"]["get"]["x-roles"]
        == ["admin", "ops"]
    )


def test_the_pseudonym_key_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "annotation-pseudonym.key"
    first = pseudonym_key(path)
    assert len(first) == 32 and pseudonym_key(path) == first and path.stat().st_mode & 0o077 == 0


def test_the_webhook_key_comes_from_the_setting_or_the_dev_keys_file(tmp_path: Path) -> None:
    assert webhook_key(AnnotationSettings(state_dir=tmp_path)) is None
    (tmp_path / "secrets").mkdir()
    keys = {"label-studio-webhook": {"role": "webhook", "key": "mlops_from_file"}}
    (tmp_path / "secrets" / "api-keys.json").write_text(json.dumps(keys))
    assert webhook_key(AnnotationSettings(state_dir=tmp_path)) == "mlops_from_file"
    assert webhook_key(AnnotationSettings(state_dir=tmp_path, webhook_api_key="mlops_env")) == "mlops_env"
