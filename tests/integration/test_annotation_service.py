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
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from contracts.envelope import Event
from contracts.events import LabelObserved, LabelObservedPayload, PredictionMade, PredictionMadePayload
from contracts.registry import encode_event
from contracts.topics import DEADLETTERS
from infra.label_studio import LocalLabelStudio, auth_header, read_credentials, start_label_studio
from infra.settings import InfraSettings
from infra.supervisor import Supervisor, pid_alive
from servicekit.auth import Role, write_dev_keys
from services.annotation.app import create_app
from services.annotation.metrics import CLIENT_LABELS_SEEN
from services.annotation.settings import AnnotationSettings
from tests.conftest import TEST_STATE_DIR
from tests.integration.test_serving_support import free_port
from tests.support import TEST_KAFKA_PORT, create_topic, wait_until

LS_PORT = TEST_KAFKA_PORT + 750
LS_STATE = TEST_STATE_DIR / "annotation-label-studio"
FEATURES = {
    "duration_in_month": 24,
    "credit_amount": 2500,
    "age_in_years": 33,
    "personal_status_and_sex": "female : divorced/separated/married",
    "purpose": "car (new)",
}
POLICY = "audit: {share: 0}\nfairness: {share: 0}\ndrift: {share: 0}\nuncertainty: {margin: 0.05}\n"


class LabelStudioServer:
    """The test's own Label Studio (own port and state), which a test may stop and start again."""

    def __init__(self) -> None:
        self.settings = InfraSettings(state_dir=LS_STATE, label_studio_port=LS_PORT, kafka_port=LS_PORT + 2)
        self.server = LocalLabelStudio(self.settings)
        self.pid: int | None = None

    def start(self) -> None:
        if self.pid is None:
            supervisor = Supervisor(self.settings)
            components = supervisor.load()
            components["label-studio"] = start_label_studio(self.settings, components, Console(stderr=True))
            supervisor.save(components)
            self.pid = components["label-studio"].pid
        else:
            self.pid = self.server.start()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.pid is not None and pid_alive(self.pid):
            os.killpg(self.pid, sig)  # its own session: the server and its children
            deadline = time.monotonic() + 30
            while pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.2)

    @property
    def url(self) -> str:
        return self.server.url

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=auth_header(self.settings.secrets_dir), timeout=30)


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
    root = Path(tempfile.mkdtemp(prefix="annotation-test-"))
    _, keys_file = write_dev_keys(root / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((root / "secrets" / "api-keys.json").read_text())
    keys = {v["role"]: v["key"] for v in plain.values()}
    suffix = uuid.uuid4().hex[:8]
    topics = {
        n: f"test.annotation.{suffix}.{n}"
        for n in ("predictions", "drift", "explanations", "labels", "hooks")
    }
    asyncio.run(_topics(kafka_bootstrap, list(topics.values())))
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    port = free_port()
    settings = AnnotationSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        state_dir=root / "state",
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",  # no model there: the default threshold
        api_keys_file=keys_file,
        http_port=port,
        label_studio_url=label_studio.url,
        label_studio_credentials_file=label_studio.settings.secrets_dir / "label-studio.json",
        policy_file=policy,
        predictions_topic=topics["predictions"],
        drift_topic=topics["drift"],
        explanations_topic=topics["explanations"],
        labels_topic=topics["labels"],
        webhooks_topic=topics["hooks"],
        webhook_api_key=keys["webhook"],
        poll_interval_s=3600,  # labels can only come back in time through the webhook
        max_backoff_s=2,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    asyncio.run(wait_until(lambda: _ready(base), 120, "annotation ready"))
    yield {
        "base": base,
        "keys": keys,
        "topics": topics,
        "model": f"credit-risk-{suffix}",
        "bootstrap": kafka_bootstrap,
    }
    server.should_exit = True
    thread.join(30)


async def _topics(bootstrap: str, names: list[str]) -> None:
    for name in names:
        await create_topic(bootstrap, name, partitions=1)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def send(bootstrap: str, topic: str, *events: Event[Any]) -> None:
    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for event in events:
                await producer.send_and_wait(topic, encode_event(event), key=event.key())
        finally:
            await producer.stop()

    asyncio.run(go())


def read_until(
    bootstrap: str, topic: str, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float, what: str
) -> list[dict[str, Any]]:
    """Every message of `topic` (JSON) once `done` holds for them; fails after `timeout_s`."""

    async def go() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                found += [json.loads(r.value) for records in batch.values() for r in records]
                if done(found):
                    return found
        finally:
            await consumer.stop()
        raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")

    return asyncio.run(go())


def prediction(model: str, pid: str, score: float) -> PredictionMade:
    payload = PredictionMadePayload(
        prediction_id=pid, entity_id=f"app-{pid}", model_name=model, model_version="1", score=score,
        decision="reject" if score >= 0.5 else "approve", features=FEATURES, latency_ms=1.0,
    )  # fmt: skip
    return PredictionMade.create(payload, "serving")


def task_of(service: dict[str, Any], pid: str) -> dict[str, Any] | None:
    answer = httpx.get(
        f"{service['base']}/tasks/{pid}", headers={"X-API-Key": service["keys"]["ops"]}, timeout=10
    )
    return answer.json() if answer.status_code == 200 else None


def wait_state(service: dict[str, Any], pid: str, state: str, timeout_s: float = 60) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def reached() -> bool:
        found.update(task_of(service, pid) or {})
        return found.get("state") == state

    asyncio.run(wait_until(reached, timeout_s, f"task of {pid} {state}"))
    return found


def project_tasks(label_studio: LabelStudioServer, model: str) -> list[dict[str, Any]]:
    with label_studio.api() as api:
        projects = api.get("/api/projects/", params={"title": model, "page_size": 100}).json()["results"]
        [project] = [p for p in projects if p["title"] == f"Review: {model}"]
        answer = api.get("/api/tasks/", params={"project": project["id"], "page_size": 1000}).json()
    tasks: list[dict[str, Any]] = answer["tasks"]
    return tasks


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
        wait_state(service, pid, "open", timeout_s=90)
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
