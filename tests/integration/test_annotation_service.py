"""The annotation service against the real Label Studio server (its own venv, started through
infra/label_studio.py) and the real test broker, in-process under uvicorn:

- a prediction near the threshold becomes a Label Studio task with its features and nothing else; one
  far from it does not;
- a scripted annotator labels it through Label Studio's API, Label Studio's webhook reaches the service
  (polling is set to an hour here, so only the webhook can bring it in time) and a LabelObserved with
  source "annotation", the task id, a pseudonym and the prediction id appears on the labels topic;
- forged webhooks are refused 401; a malformed one is 422 and dead-lettered with its reason; a
  replayed one is 409 and dead-lettered `replayed`;
- Label Studio stopped while predictions arrive, then started: each chosen prediction becomes exactly
  one task;
- a client's label first: no task is sent, and no annotation label is published.

The model name is unique per run, so each run gets a fresh project in the kept Label Studio state."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.envelope import Event
from contracts.events import LabelObserved, LabelObservedPayload
from contracts.topics import DEADLETTERS
from infra.label_studio import read_credentials
from services.annotation.metrics import CLIENT_LABELS_SEEN
from services.annotation.settings import AnnotationSettings
from tests.integration.annotation_support import (
    FEATURES,
    LabelStudioServer,
    prediction,
    project_tasks,
    read_until,
    running_service,
    send,
    task_of,
    wait_state,
)
from tests.support import wait_until


@pytest.fixture(scope="module")
def label_studio() -> Iterator[LabelStudioServer]:
    server = LabelStudioServer()
    if not (server.server.venv / "bin" / "label-studio").exists():
        pytest.fail(
            f"Label Studio is not installed in {server.server.venv}: run scripts/install-label-studio.sh"
        )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(kafka_bootstrap: str, label_studio: LabelStudioServer) -> Iterator[dict[str, Any]]:
    with running_service(kafka_bootstrap, label_studio) as running:
        yield running


def test_a_near_prediction_becomes_a_task_with_its_features_and_a_far_one_does_not(
    service: dict[str, Any], label_studio: LabelStudioServer
) -> None:
    model = service["model"]
    send(service["bootstrap"], service["topics"]["predictions"], prediction(model, "far", 0.95))
    send(service["bootstrap"], service["topics"]["predictions"], prediction(model, "near", 0.52))
    opened = wait_state(service, "near", "open")
    assert opened["reasons"] == ["uncertain"] and opened["task_id"]
    assert task_of(service, "far") is None  # read before "near" (one partition), and not chosen
    [task] = project_tasks(label_studio, model)
    assert task["id"] == opened["task_id"]
    data = task["data"]
    assert data["prediction_id"] == "near" and data["features"] == FEATURES and data["score"] == 0.52
    assert set(data) == {
        "prediction_id", "entity_id", "model_name", "model_version", "decision", "score", "probability",
        "reasons", "features", "explanation",
    }  # fmt: skip
    assert data["explanation"].startswith("No explanation")
    with label_studio.api() as api:
        hooks = api.get("/api/webhooks/", params={"project": task["project"]}).json()
    [hook] = hooks  # registered once, with the webhook key Label Studio sends back
    assert hook["url"] == f"{service['base']}/label-studio/webhook"
    assert hook["headers"] == {"X-API-Key": service["keys"]["webhook"]}


def test_an_annotation_in_label_studio_becomes_a_label_observed_through_the_webhook(
    service: dict[str, Any], label_studio: LabelStudioServer
) -> None:
    opened = wait_state(service, "near", "open")
    result = [
        {"from_name": "outcome", "to_name": "explanation", "type": "choices", "value": {"choices": ["bad"]}},
        {"from_name": "comment", "to_name": "explanation", "type": "textarea", "value": {"text": ["debt"]}},
    ]
    with label_studio.api() as api:
        created = api.post(f"/api/tasks/{opened['task_id']}/annotations/", json={"result": result})
    assert created.status_code == 201, created.text
    user_id = created.json()["completed_by"]
    labels = read_until(
        service["bootstrap"],
        service["topics"]["labels"],
        lambda found: any(m["payload"].get("prediction_id") == "near" for m in found),
        60,
        "the annotation's LabelObserved",
    )
    [label] = [m for m in labels if m["payload"]["prediction_id"] == "near"]
    body = label["payload"]
    assert (
        body["source"] == "annotation"
        and body["label"] == "bad"
        and body["task_id"] == str(opened["task_id"])
    )
    assert body["entity_id"] == "app-near" and body["agreement"] == 1.0
    [annotator] = body["annotators"]
    email = read_credentials(label_studio.settings.secrets_dir)["email"]
    assert annotator.startswith("annotator-") and annotator != f"annotator-{user_id}"
    assert email not in json.dumps(label) and "debt" not in json.dumps(label)
    done = wait_state(service, "near", "labelled")
    assert done["comment"] == "debt" and done["outcome"] == "bad"


def test_forged_malformed_and_replayed_webhooks(
    service: dict[str, Any], label_studio: LabelStudioServer
) -> None:
    url = f"{service['base']}/label-studio/webhook"
    opened = wait_state(service, "near", "labelled")
    with label_studio.api() as api:
        [annotation] = api.get(f"/api/tasks/{opened['task_id']}/annotations/").json()
    body = {"action": "ANNOTATION_CREATED", "annotation": annotation}
    assert httpx.post(url, json=body, timeout=10).status_code == 401
    assert httpx.post(url, json=body, headers={"X-API-Key": "mlops_forged"}, timeout=10).status_code == 401
    producer = {"X-API-Key": service["keys"]["webhook"], "Content-Type": "application/json"}
    malformed = httpx.post(url, content=b'{"action": "ANNOTATION_CREATED"', headers=producer, timeout=10)
    assert malformed.status_code == 422 and malformed.json()["code"] == "not_json"

    def replayed() -> bool:  # Label Studio's own call may have been processed already, or not yet
        return httpx.post(url, json=body, headers=producer, timeout=10).status_code == 409

    asyncio.run(wait_until(replayed, 30, "the same annotation to be refused as replayed"))
    hooks = service["topics"]["hooks"]

    def letters(found: list[dict[str, Any]]) -> set[str]:
        return {m["payload"]["reason"]["code"] for m in found if m["payload"]["source"]["topic"] == hooks}

    found = read_until(
        service["bootstrap"],
        DEADLETTERS,
        lambda f: {"not_json", "replayed"} <= letters(f),
        60,
        "dead letters",
    )
    assert {"not_json", "replayed"} <= letters(found)
    mine = [m for m in found if m["payload"]["source"]["topic"] == hooks]
    assert all(m["payload"]["consumer"] == "annotation" for m in mine)


def test_a_client_label_first_means_no_task_and_no_annotation_label(
    service: dict[str, Any], label_studio: LabelStudioServer
) -> None:
    model = service["model"]
    seen = CLIENT_LABELS_SEEN._value.get()
    client = LabelObservedPayload(
        dataset="loan_applications", entity_id="app-early", label="good", event_time=datetime.now(UTC),
        prediction_id="early",
    )  # fmt: skip
    send(service["bootstrap"], service["topics"]["labels"], LabelObserved.create(client, "serving"))
    asyncio.run(wait_until(lambda: CLIENT_LABELS_SEEN._value.get() > seen, 60, "the client's label seen"))
    send(service["bootstrap"], service["topics"]["predictions"], prediction(model, "early", 0.51))
    row = wait_state(service, "early", "superseded")
    assert row["task_id"] is None
    assert "early" not in {t["data"]["prediction_id"] for t in project_tasks(label_studio, model)}
    labels = read_until(
        service["bootstrap"], service["topics"]["labels"], lambda f: len(f) >= 2, 10, "labels"
    )
    assert [m["payload"]["source"] for m in labels if m["payload"]["prediction_id"] == "early"] == ["client"]


def test_label_studio_killed_mid_stream_then_back_each_chosen_prediction_becomes_exactly_one_task(
    service: dict[str, Any], label_studio: LabelStudioServer
) -> None:
    model = service["model"]
    before = [f"before-kill-{i}" for i in range(2)]
    send(
        service["bootstrap"], service["topics"]["predictions"], *[prediction(model, p, 0.49) for p in before]
    )
    for pid in before:
        wait_state(service, pid, "open")
    label_studio.stop(signal.SIGKILL)  # kill -9: no goodbye to its clients
    try:
        chosen = [f"down-{i}" for i in range(4)]
        send(
            service["bootstrap"],
            service["topics"]["predictions"],
            *[prediction(model, p, 0.49) for p in chosen],
        )
        for pid in chosen:
            wait_state(service, pid, "queued")
        ops = {"X-API-Key": service["keys"]["ops"]}

        def unreachable() -> bool:
            overview = httpx.get(f"{service['base']}/tasks", headers=ops, timeout=10).json()
            return overview["label_studio"]["reachable"] is False and bool(
                overview["label_studio"]["unreachable_since"]
            )

        asyncio.run(wait_until(unreachable, 60, "the service to report Label Studio unreachable"))
    finally:
        label_studio.start()
    for pid in chosen:
        wait_state(service, pid, "open")
    tasks = [t["data"]["prediction_id"] for t in project_tasks(label_studio, model)]
    assert sorted(p for p in tasks if p.startswith("down-")) == chosen  # each exactly once
    assert sorted(p for p in tasks if p.startswith("before-kill-")) == before  # none lost, none doubled


def test_the_threshold_is_the_versions_own_from_its_model_card(tmp_path: Path) -> None:
    """Read through contracts/model.py from a real MLflow registry, cached; an unknown version is None
    (the intake then uses the policy's default and counts it)."""
    from services.annotation.adapters.thresholds import MlflowThresholds
    from workbench.serving_devdata import register_reference_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = register_reference_model(
        uri,
        tmp_path / "artifacts",
        "credit-risk",
        features=("duration_in_month", "credit_amount"),
        threshold=0.3,
    )
    thresholds = MlflowThresholds(uri, retry_s=3600)
    assert thresholds.threshold("credit-risk", version) == 0.3
    assert thresholds.threshold("credit-risk", "999") is None
    assert (
        thresholds._known == {("credit-risk", version): 0.3} and ("credit-risk", "999") in thresholds._failed
    )


def test_polling_alone_brings_labels_back_and_a_lost_import_answer_makes_no_duplicate(
    label_studio: LabelStudioServer, tmp_path: Path
) -> None:
    """The guaranteed path against the real server, without webhooks (no key) and without Kafka: the
    sync reads the project's tasks and their annotations; a row whose import reached Label
    Studio but was never marked is found by data.prediction_id instead of being imported again."""
    from servicekit.outbox import SqliteOutbox
    from services.annotation.adapters.label_studio import LabelStudioApi
    from services.annotation.adapters.store import AnnotationStore
    from services.annotation.domain.policy import SamplingPolicy
    from services.annotation.intake import Intake
    from services.annotation.labels import Labels
    from services.annotation.sync import LabelStudioSync

    model = f"credit-risk-poll-{uuid.uuid4().hex[:8]}"
    settings = AnnotationSettings(state_dir=tmp_path, label_studio_url=label_studio.url)
    store = AnnotationStore(None)
    sent: list[Event[Any]] = []

    async def publish(event: Event[Any], topic: str) -> None:
        sent.append(event)

    async def scenario() -> None:
        api = LabelStudioApi(label_studio.url, label_studio.settings.secrets_dir / "label-studio.json", 30)

        class NoCards:
            def threshold(self, model_name: str, version: str) -> float | None:
                return None

        policy = SamplingPolicy.from_mapping({"audit": {"share": 0}, "fairness": {"share": 0}})
        labels = Labels(settings, policy, store, SqliteOutbox(store.db, publish), b"k" * 32)
        sync = LabelStudioSync(settings, policy, store, api, labels, None)
        intake = Intake(policy, store, NoCards(), chosen=sync.wake)
        try:
            await intake.on_predictions([prediction(model, "lost", 0.5), prediction(model, "polled", 0.5)])
            project = await api.ensure_project(f"Review: {model}", 1)
            strict = await api.ensure_project(f"Review: {model}-strict", 3)
            assert await api.ensure_project(f"Review: {model}-strict", 3) == strict  # found by its title
            with label_studio.api() as client:
                assert client.get(f"/api/projects/{strict}/").json()["maximum_annotations"] == 3
            assert await api.ensure_project(f"Review: {model}-strict", 2) == strict  # the policy changed
            with label_studio.api() as client:
                assert client.get(f"/api/projects/{strict}/").json()["maximum_annotations"] == 2
            lost = store.get("lost")
            assert lost is not None
            store.mark_import_started(["lost"])  # the import call happened, its answer was lost
            await api.import_tasks(project, [lost.data])
            await sync.sync_once()
            tasks = await api.tasks(project)
            assert sorted(t["data"]["prediction_id"] for t in tasks) == ["lost", "polled"]  # no duplicate
            polled = store.get("polled")
            assert polled is not None and polled.state == "open" and store.get("lost").state == "open"  # type: ignore[union-attr]
            result = [
                {
                    "from_name": "outcome",
                    "to_name": "explanation",
                    "type": "choices",
                    "value": {"choices": ["good"]},
                }
            ]
            with label_studio.api() as client:
                created = client.post(f"/api/tasks/{polled.task_id}/annotations/", json={"result": result})
            assert created.status_code == 201, created.text
            await sync.sync_once()
        finally:
            await api.close()

    asyncio.run(scenario())
    [label] = [e for e in sent if isinstance(e, LabelObserved)]
    assert label.payload.prediction_id == "polled" and label.payload.label == "good"
    assert label.payload.source == "annotation" and label.payload.annotators[0].startswith("annotator-")
