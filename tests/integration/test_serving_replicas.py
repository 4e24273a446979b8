"""Two serving replicas, as the cluster profile runs them (`serving`, `serving-2`), on one broker and one
registry: each reads `model.promoted` in a consumer group of its own, so ONE promotion swaps BOTH (in
one shared group, Kafka would hand the event to one replica and the other would keep the old model)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from servicekit.broker import EventPublisher, make_broker
from services.serving.settings import ServingSettings
from tests.integration.test_serving_service import promote
from tests.integration.test_serving_support import World, serving_in_thread, world
from tests.support import probe_settings, wait_until

PROMOTIONS = "replica-promotions"


@pytest.fixture(scope="module")
def w() -> World:
    return world()


@pytest.fixture(scope="module")
def replicas(kafka_bootstrap: str, w: World) -> Iterator[list[str]]:
    def settings() -> ServingSettings:  # a fresh instance id each, as each replica process gets
        return ServingSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            state_dir=w.root / "state",
            feast_repo_dir=w.feast_dir,
            mlflow_tracking_uri=w.mlflow_uri,
            api_keys_file=w.keys_file,
            champion_poll_s=0,  # swaps happen on model.promoted only
            predictions_topic=w.topic("replica-predictions"),
            labels_topic=w.topic("replica-labels"),
            promotions_topic=w.topic(PROMOTIONS),
        )

    first, second = settings(), settings()
    assert first.consumer_group != second.consumer_group
    topics = {w.topic(name): 3 for name in ("replica-predictions", "replica-labels", PROMOTIONS)}
    with contextlib.ExitStack() as running:
        yield [running.enter_context(serving_in_thread(s, topics)) for s in (first, second)]


def _versions(replicas: list[str], key: str) -> list[str]:
    return [
        str(
            httpx.get(f"{base}/model", headers={"X-API-Key": key}, timeout=30).json()["champion"][
                "model_version"
            ]
        )
        for base in replicas
    ]


async def test_one_promotion_swaps_every_replica(kafka_bootstrap: str, w: World, replicas: list[str]) -> None:
    key = w.keys["client"]
    before = set(_versions(replicas, key))
    assert len(before) == 1, before  # both serve the same champion to begin with
    target = w.small if before != {w.small} else w.full
    broker = make_broker(probe_settings(kafka_bootstrap))
    async with broker:
        await broker.start()
        await promote(w, EventPublisher(broker, "probe"), target, PROMOTIONS)  # ONE event
    await wait_until(lambda: set(_versions(replicas, key)) == {target}, timeout_s=120, what="both replicas")
