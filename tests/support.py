"""Helpers shared by the test tiers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
from pydantic_settings import SettingsConfigDict

from contracts.events import DeadLettered, TrainingRequested, TrainingRequestedPayload
from contracts.registry import parse_event
from contracts.topics import DEADLETTERS
from infra.topics import TopicPlan, ensure_topics_async
from servicekit.settings import ServiceSettings

# The shared test broker's port; brokers that tests start for themselves use TEST_KAFKA_PORT + 100, + 200...
TEST_KAFKA_PORT = int(os.environ.get("MLOPS_TEST_KAFKA_PORT", "19092"))


class ProbeSettings(ServiceSettings):
    """Settings of a throwaway service used by tests."""

    model_config = SettingsConfigDict(env_prefix="PROBE_", extra="ignore")
    service_name: ClassVar[str] = "probe"


def probe_settings(bootstrap: str, **overrides: object) -> ProbeSettings:
    return ProbeSettings(kafka_bootstrap_servers=bootstrap, **overrides)  # type: ignore[arg-type]


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    await ensure_topics_async(bootstrap, [TopicPlan(name, partitions)])


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


def training_request(model: str = "credit", by: str = "tests") -> TrainingRequested:
    return TrainingRequested.create(
        TrainingRequestedPayload(model_name=model, reason="manual", requested_by=by), producer="probe"
    )


# Settings a test process may have picked up (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, for
# one) that must not leak into the processes an e2e test starts: they get a stack of their own.
_STACK_SETTINGS = ("KAFKA_BOOTSTRAP_SERVERS", "MLFLOW_TRACKING_URI", "MLOPS_FEAST_REPO", "MLOPS_STATE_DIR")


def isolated_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _STACK_SETTINGS}


async def send_one(options: dict[str, Any], topic: str, value: bytes = b"{}") -> None:
    """One acknowledged record with the given client options (credentials included), or the broker's
    refusal raised."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**options, acks="all", request_timeout_ms=8000)
    try:
        await producer.start()
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()  # also after a refused start: no connection is left open


async def wait_ready(
    port: int, process: subprocess.Popen[bytes], name: str, timeout_s: float = 120.0
) -> None:
    """Poll a service process's `/ready` on `port` until it answers 200; fail if it exits first."""
    async with httpx.AsyncClient() as client:
        for _ in range(int(timeout_s * 10)):
            assert process.poll() is None, f"{name} exited during start-up"
            try:
                if (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never became ready")


async def dead_letters_for(bootstrap: str, topic: str, expected: int) -> list[DeadLettered]:
    """Read the shared dead-letter topic from the start, in a group of its own, until `expected`
    letters about `topic` arrived; those letters."""
    from servicekit.broker import EventPublisher, make_broker
    from servicekit.consumer import RawMessage, Subscriptions

    broker = make_broker(probe_settings(bootstrap))
    reader = Subscriptions(broker, EventPublisher(broker, "dlq-reader"), "dlq-reader")
    letters: list[DeadLettered] = []

    async def keep(raws: list[RawMessage]) -> None:
        for raw in raws:
            event = parse_event(raw.value or b"")
            if isinstance(event, DeadLettered) and event.payload.source.topic == topic:
                letters.append(event)

    reader.on_raw(DEADLETTERS, group_id=f"dlq-{uuid.uuid4()}")(keep)
    async with reader.broker:
        await reader.broker.start()
        await wait_until(lambda: len(letters) >= expected, what=f"{expected} dead letters")
    return letters
