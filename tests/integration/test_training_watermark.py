"""The label watermark on the real broker (training app with fake Feast and MLflow): a run asked for
right after N labels were published, while the labels consumer has stored none of them, waits and
trains on all N; after a restart, the labels the group committed before count as consumed, so a run
asked for at once does not wait for labels that will never be delivered again."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI

from contracts.events import LabelObserved, LabelObservedPayload
from feature_repo import ENTITY_KEY
from servicekit.auth import hash_key
from servicekit.broker import EventPublisher, make_broker
from servicekit.watermark import committed_offsets, end_offsets
from services.training.app import create_app
from services.training.domain.dataset import LABEL
from services.training.handlers import TrainingService
from services.training.settings import TrainingSettings
from tests.integration.test_redis_online_store import dead_letters_about
from tests.support import create_topic, probe_settings, wait_until
from tests.unit.test_training_support import FakeRegistry, FakeSource, feature_frame, label_events

N = 600
PARTITIONS = 3
OPS_KEY = "mlops_watermark-test-ops-key"


@pytest.fixture(scope="module")
async def settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> TrainingSettings:
    run = uuid.uuid4().hex[:8]
    topics = {name: f"test.wm.{name}.{run}" for name in ("labels", "requests", "drift", "out")}
    await create_topic(kafka_bootstrap, topics["labels"], partitions=PARTITIONS)
    for name in ("requests", "drift", "out"):
        await create_topic(kafka_bootstrap, topics[name])
    return TrainingSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        state_dir=tmp_path_factory.mktemp("watermark"),
        model_name=f"credit-wm-{run}",
        group_id=f"training-wm-{run}",
        labels_topic=topics["labels"],
        requests_topic=topics["requests"],
        drift_topic=topics["drift"],
        trained_topic=topics["out"],
        promoted_topic=topics["out"],
        rejected_topic=topics["out"],
        label_watermark_wait_s=60,
        api_keys_json=json.dumps([{"name": "ops-test", "role": "ops", "sha256": hash_key(OPS_KEY)}]),
    )


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return feature_frame(N)


def labels(features: pd.DataFrame) -> list[LabelObserved]:
    return label_events(features, timedelta(seconds=30))


@pytest.fixture
async def running(settings: TrainingSettings, features: pd.DataFrame) -> AsyncIterator[FastAPI]:
    app = create_app(settings, source=FakeSource(features), registry=FakeRegistry())
    async with app.router.lifespan_context(app):
        yield app


def service(app: FastAPI) -> TrainingService:
    training: TrainingService = app.state.training
    return training


async def ask_for_training(app: FastAPI) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://training") as client:
        response = await client.post("/train", json={"reason": "manual"}, headers={"X-API-Key": OPS_KEY})
    assert response.status_code == 202
    return str(response.json()["event_id"])


async def outcome_of(app: FastAPI, request_id: str) -> dict[str, Any]:
    state = service(app).state

    def finished() -> bool:
        run = state.latest_run()
        return run is not None and run["request_id"] == request_id

    await wait_until(finished, timeout_s=180, what="the training outcome")
    run = state.latest_run()
    assert run is not None
    return run


async def test_a_run_asked_for_right_after_the_labels_were_published_learns_from_all_of_them(
    running: FastAPI, settings: TrainingSettings, features: pd.DataFrame
) -> None:
    training = service(running)
    gate = threading.Event()  # the label store is held until training was asked for: a slow consumer
    store = training.state.add_labels

    def slow_store(rows: list[Any], sources: list[str] | None = None) -> list[bool]:
        gate.wait(timeout=120)
        return store(rows, sources)

    training.state.add_labels = slow_store  # type: ignore[method-assign]
    broker = make_broker(probe_settings(settings.kafka_bootstrap_servers))
    await broker.connect()
    try:
        publisher = EventPublisher(broker, "probe")
        for event in labels(features):
            await publisher.publish(event, topic=settings.labels_topic)
    finally:
        await broker.stop()

    request_id = await ask_for_training(running)
    assert training.state.label_count() == 0  # without the wait, the run would learn from no label
    gate.set()
    outcome = await outcome_of(running, request_id)
    assert outcome["counts"]["labels_requested"] == N, outcome["reasons"]
    watermark = outcome["lineage"]["labels_watermark"]
    assert watermark["reached"] is True and watermark["partitions_short"] == 0
    assert sum(watermark["watermark"].values()) == N and len(watermark["watermark"]) == PARTITIONS

    # What the next test starts from: the labels group committed every label it stored.
    ends = await end_offsets(settings, settings.labels_topic)
    group = f"{settings.consumer_group}.labels"
    deadline = time.monotonic() + 60
    while await committed_offsets(settings, group, settings.labels_topic) != ends:
        assert time.monotonic() < deadline, "the labels group did not commit its offsets"
        await asyncio.sleep(0.2)


async def test_after_a_restart_committed_labels_count_as_consumed(running: FastAPI) -> None:
    training = service(running)
    assert training.labels_consumed.positions == {}  # this process has consumed no label (none is new)
    request_id = await ask_for_training(running)
    outcome = await outcome_of(running, request_id)
    watermark = outcome["lineage"]["labels_watermark"]
    assert watermark["reached"] is True and sum(watermark["watermark"].values()) == N
    assert outcome["counts"]["labels_requested"] == N  # the labels stored before the restart


async def test_implausibly_dated_labels_are_dead_lettered_and_never_outrank_a_true_one(
    running: FastAPI, settings: TrainingSettings, features: pd.DataFrame
) -> None:
    """A producer's label from the year 9999 would be the entity's latest label for good (labels are
    ranked by event time), and one from the year 1, or after 2262, would fail every later run (pandas
    cannot hold its time): both are refused with their reason, and the label after them is stored."""
    training = service(running)
    entity = str(features["application_id"].iloc[0])

    def latest() -> dict[str, Any]:
        frame = training.state.latest_labels()
        return dict(zip(frame[ENTITY_KEY], frame[LABEL], strict=True))

    def label(entity_id: str, value: str, at: datetime) -> LabelObserved:
        payload = LabelObservedPayload(
            dataset="loan_applications", entity_id=entity_id, label=value, event_time=at
        )
        return LabelObserved.create(payload, producer="tests")

    before, count = latest(), training.state.label_count()
    flipped = "good" if before[entity] == 1 else "bad"
    sent = [
        label(entity, flipped, datetime(9999, 12, 31, tzinfo=UTC)),
        label(entity, flipped, datetime(1, 1, 1, tzinfo=UTC)),
        label("wm-after", "bad", datetime.now(UTC)),
    ]
    broker = make_broker(probe_settings(settings.kafka_bootstrap_servers))
    await broker.connect()
    try:
        publisher = EventPublisher(broker, "probe")
        for event in sent:
            await publisher.publish(event, topic=settings.labels_topic)
    finally:
        await broker.stop()
    letters: list[Any] = []

    async def refused() -> bool:
        letters[:] = await dead_letters_about(settings.kafka_bootstrap_servers, settings.labels_topic)
        return len(letters) >= 2

    await wait_until(lambda: "wm-after" in latest(), timeout_s=60, what="the label after the refused ones")
    deadline = time.monotonic() + 60
    while not await refused():
        assert time.monotonic() < deadline, "no dead letters for the misdated labels"
        await asyncio.sleep(0.5)
    assert sorted(letter.payload.reason.code for letter in letters) == ["ahead_of_arrival", "too_early"]
    assert training.state.label_count() == count + 1 and latest()[entity] == before[entity]
