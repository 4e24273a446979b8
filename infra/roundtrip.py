"""The bus round trip the demo shows first: a contract event goes out through the service kit's
publisher and comes back through a FastStream subscriber with its envelope intact; a malformed
message is then dead-lettered with its reason instead of blocking the partition."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from contracts.common import KafkaCoordinates
from contracts.events import DeadLettered, TrainingRequested, TrainingRequestedPayload
from contracts.registry import parse_event
from contracts.topics import DEADLETTERS
from infra.topics import TopicPlan, ensure_topics_async
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from servicekit.settings import ServiceSettings

DEMO_TOPIC = "demo.roundtrip"  # the demo's own topic: no platform service reacts to what it sends


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")
    service_name: ClassVar[str] = "demo"


async def _round_trip(bootstrap: str) -> tuple[TrainingRequested, KafkaCoordinates, float, DeadLettered]:
    await ensure_topics_async(bootstrap, [TopicPlan(DEMO_TOPIC, 3)])
    broker = make_broker(DemoSettings(kafka_bootstrap_servers=bootstrap))
    subs = Subscriptions(broker, EventPublisher(broker, "demo"), "demo")
    run = uuid.uuid4().hex[:8]
    arrived: asyncio.Queue[tuple[TrainingRequested, KafkaCoordinates, float]] = asyncio.Queue()
    letters: asyncio.Queue[DeadLettered] = asyncio.Queue()

    event = TrainingRequested.create(
        TrainingRequestedPayload(model_name="demo", reason="manual", requested_by=f"make demo {run}"),
        producer="demo",
    )
    garbage_key = f"demo-{run}".encode()

    # Fresh groups that start at the end of their topics: this run sees only what it sends.
    @subs.on_event(DEMO_TOPIC, TrainingRequested, group_id=f"demo-{run}", start="latest")
    async def on_request(received: TrainingRequested, source: KafkaCoordinates) -> None:
        if received.event_id == event.event_id:
            await arrived.put((received, source, time.perf_counter()))

    @subs.on_raw(DEADLETTERS, group_id=f"demo-dlq-{run}", start="latest")
    async def on_letter(raws: list[RawMessage]) -> None:
        for raw in raws:
            letter = parse_event(raw.value or b"")
            if (
                isinstance(letter, DeadLettered)
                and letter.payload.key_sha256 == hashlib.sha256(garbage_key).hexdigest()
            ):
                await letters.put(letter)

    async with broker:
        await broker.start()
        # The groups start at the end of their topics: wait until they know where that is.
        await subs.ready_for_new_messages()
        sent_at = time.perf_counter()
        await subs.publisher.publish(event, topic=DEMO_TOPIC)
        received, source, received_at = await asyncio.wait_for(arrived.get(), 30)
        await broker.publish(b'{"payload": not json', DEMO_TOPIC, key=garbage_key)
        letter = await asyncio.wait_for(letters.get(), 30)
    assert received == event, "the event changed on its way through Kafka"
    return received, source, (received_at - sent_at) * 1000, letter


def bus_round_trip(bootstrap: str) -> tuple[TrainingRequested, KafkaCoordinates, float, DeadLettered]:
    return asyncio.run(_round_trip(bootstrap))
