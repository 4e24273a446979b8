"""What the annotation service's integration tests share: the test's own real Label Studio server
(which a test may kill and start again), and helpers that publish to and read from the test broker and
Label Studio."""

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from contracts.envelope import Event
from contracts.events import PredictionMade, PredictionMadePayload
from contracts.registry import encode_event
from infra.bus_access import kafka_options
from infra.label_studio import LocalLabelStudio, auth_header, start_label_studio
from infra.processes import pid_alive
from infra.settings import InfraSettings
from infra.supervisor import Supervisor
from servicekit.auth import Role, write_dev_keys
from services.annotation.app import create_app
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


async def make_topics(bootstrap: str, names: list[str]) -> None:
    for name in names:
        await create_topic(bootstrap, name, partitions=1)


def is_ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def send(bootstrap: str, topic: str, *events: Event[Any]) -> None:
    async def go() -> None:
        producer = AIOKafkaProducer(**kafka_options(bootstrap))
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
            topic, **kafka_options(bootstrap), auto_offset_reset="earliest", group_id=None
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


def wait_state(service: dict[str, Any], pid: str, state: str, timeout_s: float = 180) -> dict[str, Any]:
    """The task of prediction `pid` once it reaches `state`. Patience, not a latency claim: in a
    clean-clone `make test` (2026-12-08) Label Studio took 104 s to start and the first task of the
    module was not open within 60 s, where alone it opens in a few seconds."""
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


@contextmanager
def running_service(kafka_bootstrap: str, label_studio: LabelStudioServer) -> Iterator[dict[str, Any]]:
    """The annotation service in process under uvicorn, on topics, keys and state of its own, with a
    policy that only chooses uncertain cases, pointed at `label_studio`."""
    root = Path(tempfile.mkdtemp(prefix="annotation-test-"))
    _, keys_file = write_dev_keys(root / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((root / "secrets" / "api-keys.json").read_text())
    keys = {v["role"]: v["key"] for v in plain.values()}
    suffix = uuid.uuid4().hex[:8]
    topics = {
        n: f"test.annotation.{suffix}.{n}"
        for n in ("predictions", "drift", "explanations", "labels", "hooks")
    }
    asyncio.run(make_topics(kafka_bootstrap, list(topics.values())))
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
    asyncio.run(wait_until(lambda: is_ready(base), 120, "annotation ready"))
    yield {
        "base": base,
        "keys": keys,
        "topics": topics,
        "model": f"credit-risk-{suffix}",
        "bootstrap": kafka_bootstrap,
    }
    server.should_exit = True
    thread.join(30)
