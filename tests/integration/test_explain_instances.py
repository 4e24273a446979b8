"""Two explain instances, as the cluster profile runs them, on the real broker and one state folder:
they share the `explain` consumer group over predictions.made, each records its partitions' predictions
into the store both read; when one stops mid-stream the other takes its partitions over and no
prediction is lost; and either answers for any prediction, whichever recorded it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI

from bench.rebalance_probe import parse_group
from contracts.events import PredictionMade, PredictionMadePayload
from contracts.registry import encode_event
from services.explain.app import create_app
from services.explain.settings import ExplainSettings
from tests.support import create_topic, wait_until
from tests.unit.test_explain_routes import row
from tests.unit.test_explain_support import FakeModels, Published, reference_model
from tests.unit.test_serving_support import api_keys


def prediction(i: int) -> PredictionMade:
    payload = PredictionMadePayload(
        prediction_id=f"p-{i:04d}", entity_id=f"app-{i:05d}", model_name="credit-risk", model_version="7",
        score=0.3, decision="approve", features={**row(1), "telephone": "A191"}, latency_ms=1.0,
    )  # fmt: skip
    return PredictionMade.create(payload, producer="serving")


async def send(bootstrap: str, topic: str, numbers: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in numbers:
            event = prediction(i)
            await producer.send_and_wait(topic, encode_event(event), key=event.payload.prediction_id.encode())
    finally:
        await producer.stop()


async def holders(bootstrap: str, group: str, topic: str) -> int:
    """Members of the group that hold partitions of `topic` now (a DescribeGroups, decoded as the
    bench does; each instance also has a member for promotions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    views = [parse_group(g) for response in responses for g in response.groups if g[1] == group]
    return sum(any(t == topic for t, _ in held) for view in views for held in view.members.values())


def recorded(store: Any) -> int:
    with store.db.connection() as db:
        return int(db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])


async def test_two_instances_share_the_predictions_and_one_takes_over_when_the_other_stops(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"test.explain-instances.{uuid.uuid4().hex[:8]}.predictions"
    await create_topic(kafka_bootstrap, topic, partitions=3)
    hashed, keys = api_keys(tmp_path)
    settings = ExplainSettings(
        kafka_bootstrap_servers=kafka_bootstrap, api_keys_file=hashed, state_dir=tmp_path / "state",
        predictions_topic=topic, promotions_topic=f"{topic}.promotions",
    )  # fmt: skip

    def instance() -> FastAPI:
        models = FakeModels({"7": reference_model("7")}, champion="7")
        return create_app(settings, models=models, publish=Published())

    first, second = instance(), instance()
    store = first.state.recorder.store
    async with contextlib.AsyncExitStack() as running:
        first_running = first.router.lifespan_context(first)
        await first_running.__aenter__()
        await running.enter_async_context(second.router.lifespan_context(second))
        deadline = asyncio.get_running_loop().time() + 60
        while await holders(kafka_bootstrap, settings.consumer_group, topic) < 2:
            assert asyncio.get_running_loop().time() < deadline, "the two never shared the group"
            await asyncio.sleep(0.5)
        await send(kafka_bootstrap, topic, range(150))
        await wait_until(lambda: recorded(store) == 150, 60, "the first half recorded")
        await first_running.__aexit__(None, None, None)  # one instance stops mid-stream
        await send(kafka_bootstrap, topic, range(150, 300))
        await wait_until(lambda: recorded(store) == 300, 90, "the rest recorded by the other")

        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://explain") as client:
            client.headers["X-API-Key"] = keys["client"]
            for prediction_id in ("p-0000", "p-0149", "p-0299"):
                answer = await client.get(f"/explain/{prediction_id}")
                assert answer.status_code == 200, answer.text
                assert answer.json()["prediction_id"] == prediction_id
