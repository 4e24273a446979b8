"""Redis as Feast's online store (the cluster profile's), started by infra/redis_local.py, under the
features service on the real broker, and read back through Feast the way serving reads it.

The drill: Redis is killed with SIGKILL mid-stream and started again seconds later. The service must
wait (its /ready names redis as unavailable, its log says so), dead-letter nothing, and once Redis is
back hold every record's features, each entity once, with the values that were pushed; what was
written before the kill survives it (the append-only file)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from redis.backoff import NoBackoff
from redis.retry import Retry

from contracts.events import DeadLettered, RecordCleaned
from contracts.registry import parse_event
from contracts.topics import DEADLETTERS
from feature_repo.names import FEATURES
from infra.lag import LagReader
from infra.redis_local import LocalRedis, feast_online_store, read_password
from infra.settings import InfraSettings
from servicekit.broker import EventPublisher, make_broker
from services.features.app import create_app as create_features
from services.features.settings import FeaturesSettings
from services.serving.adapters.feast_online import FeastOnlineFeatures
from services.serving.settings import ServingSettings
from tests.integration.test_training_support import applications, cleaned
from tests.support import create_topic, probe_settings, wait_until
from tests.support_postgres import free_port

BEFORE, DURING = 200, 600  # records streamed before the drill, and across it


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(InfraSettings(state_dir=tmp_path / "infra", redis_port=free_port()))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def records(n: int, prefix: str, seed: int) -> list[RecordCleaned]:
    return [cleaned(app, i) for i, app in enumerate(applications(n, prefix, seed=seed))]


def expected_features(events: list[RecordCleaned]) -> dict[str, list[Any]]:
    return {name: [e.payload.record[name] for e in events] for name in FEATURES}


def online_features(store: FeastOnlineFeatures, events: list[RecordCleaned]) -> dict[str, list[Any]]:
    rows = store.read([e.payload.entity_id for e in events], FEATURES)
    return {name: [row[name] if row else None for row in rows] for name in FEATURES}


async def readiness(app: FastAPI) -> tuple[int, dict[str, Any]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://features") as client:
        response = await client.get("/ready")
    return response.status_code, response.json()


async def dead_letters_about(bootstrap: str, topic: str) -> list[DeadLettered]:
    """Every letter on the shared dead-letter topic, from its start to its end now, about `topic`."""
    lag = LagReader(bootstrap)
    await lag.start()
    try:
        ends = await lag.end_offsets([DEADLETTERS])
    finally:
        await lag.stop()
    partitions = list(ends)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[DeadLettered] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                found += [e for r in batch if isinstance(e := parse_event(r.value or b""), DeadLettered)]
        return [letter for letter in found if letter.payload.source.topic == topic]
    finally:
        await consumer.stop()


async def test_features_stream_into_redis_and_survive_a_sigkill_of_redis_mid_stream(
    kafka_bootstrap: str,
    tmp_path: Path,
    redis_server: LocalRedis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="servicekit.outages")
    run = uuid.uuid4().hex[:8]
    clean_topic, updated_topic = f"test.redis.clean.{run}", f"test.redis.updated.{run}"
    for topic in (clean_topic, updated_topic):
        await create_topic(kafka_bootstrap, topic, partitions=1)
    # As `mlops up` hands it to every service: one variable, so features and serving share the store.
    monkeypatch.setenv("MLOPS_FEAST_ONLINE_STORE", json.dumps(feast_online_store(redis_server.settings)))
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "services"))
    features = create_features(
        FeaturesSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            group_id=f"features-{run}",
            clean_topic=clean_topic,
            updated_topic=updated_topic,
        )
    )
    serving = ServingSettings(kafka_bootstrap_servers=kafka_bootstrap)
    reader = FeastOnlineFeatures(serving.feature_store_dir, serving.feast_project, serving.feast_online_store)
    before, during = records(BEFORE, "rb", seed=21), records(DURING, "rd", seed=22)
    broker = make_broker(probe_settings(kafka_bootstrap))
    publisher = EventPublisher(broker, "probe")
    ledger = features.state.ledger

    async def send(events: list[RecordCleaned]) -> None:
        for event in events:
            await publisher.publish(event, topic=clean_topic)

    async with features.router.lifespan_context(features), broker:
        await broker.start()
        await broker.publish(b"{not json", clean_topic)  # the one letter expected: the reader works
        await send(before)
        await wait_until(lambda: ledger.count() == BEFORE, timeout_s=90, what="the first records pushed")
        await asyncio.to_thread(reader.open)
        assert online_features(reader, before) == expected_features(before)

        await send(during[: DURING // 2])
        await wait_until(lambda: ledger.count() > BEFORE, timeout_s=60, what="the stream under way")
        os.kill(redis_server.pid() or 0, signal.SIGKILL)  # mid-stream: a batch may be half written
        await send(during[DURING // 2 :])  # and the rest arrives while Redis is down
        status, body = await wait_for_outage(features)
        assert status == 503 and body["unavailable"]["redis"]["error"] == "ConnectionError"
        stalled = ledger.count()
        await asyncio.sleep(3)  # a few seconds down
        assert ledger.count() == stalled < BEFORE + DURING  # nothing is recorded without Redis
        redis_server.start()
        await wait_until(lambda: ledger.count() == BEFORE + DURING, timeout_s=120, what="every record")
        await wait_until_ready(features)

    letters = await dead_letters_about(kafka_bootstrap, clean_topic)
    assert [letter.payload.reason.code for letter in letters] == ["not_json"]  # none from the outage
    with redis_server.client() as client:
        assert client.dbsize() == BEFORE + DURING  # one hash per entity: each record's features once
    assert online_features(reader, before + during) == expected_features(before + during)
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("redis is unavailable (ConnectionError)") for m in said)
    assert any(m.startswith("redis is back after") for m in said)


async def wait_for_outage(app: FastAPI) -> tuple[int, dict[str, Any]]:
    """/ready once it names redis (the first failed push takes redis-py's own retries, ~10 s)."""
    found: list[tuple[int, dict[str, Any]]] = []

    async def check() -> None:
        status, body = await readiness(app)
        if "redis" in body.get("unavailable", {}):
            found.append((status, body))

    for _ in range(600):
        await check()
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError("/ready never named redis as unavailable")


async def wait_until_ready(app: FastAPI) -> None:
    for _ in range(600):
        if (await readiness(app))[0] == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("/ready did not come back after Redis did")


def test_a_client_without_the_password_is_refused(redis_server: LocalRedis) -> None:
    port = redis_server.port
    once = Retry(NoBackoff(), 0)  # redis-py retries a refusal by default; one answer is the point here
    with pytest.raises(redis.AuthenticationError), redis.Redis(port=port, retry=once) as stranger:
        stranger.ping()
    with (
        pytest.raises(redis.AuthenticationError),
        redis.Redis(port=port, password="guess", retry=once) as guesser,
    ):
        guesser.ping()
    with redis_server.client() as client:
        assert client.ping() is True
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    pid = redis_server.pid()
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert read_password(redis_server.settings.secrets_dir).encode() not in cmdline
    assert redis_server.marker.encode() in cmdline
