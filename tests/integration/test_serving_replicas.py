"""Two serving replicas, as the cluster profile runs them (`serving`, `serving-2`), on one broker and one
registry: each reads `model.promoted` in a consumer group of its own, so ONE promotion swaps BOTH (in
one shared group, Kafka would hand the event to one replica and the other would keep the old model)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from servicekit.broker import EventPublisher, make_broker
from tests.integration.test_serving_service import promote
from tests.integration.test_serving_support import World, serving_in_thread, serving_settings, world
from tests.support import probe_settings, wait_until

PROMOTIONS = "replica-promotions"  # the world topic the replicas swap on


@pytest.fixture(scope="module")
def w() -> World:
    return world()


@pytest.fixture(scope="module")
def replicas(kafka_bootstrap: str, w: World) -> Iterator[list[str]]:
    first, second = (serving_settings(kafka_bootstrap, w, "replica-") for _ in range(2))
    assert first.consumer_group != second.consumer_group
    topics = {w.topic(f"replica-{name}"): 3 for name in ("predictions", "labels", "promotions")}
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
