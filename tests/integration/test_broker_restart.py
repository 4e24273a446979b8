"""A broker restart mid-stream loses nothing that was acknowledged (acks=all, idempotent producer)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from infra.kafka_local import LocalKafka
from servicekit.consumer import RawMessage
from tests.integration.test_event_bus import kit
from tests.support import TEST_KAFKA_PORT, create_topic, wait_until

PORT = TEST_KAFKA_PORT + 100  # a broker of its own, beside the shared test broker


@pytest.fixture
def own_broker(tmp_path: Path, jars_dir: Path) -> LocalKafka:
    """A broker of its own: restarting the shared one would disturb the other tests."""
    kafka = LocalKafka(home=tmp_path / "kafka", jars_dir=jars_dir, port=PORT, controller_port=PORT + 1)
    kafka.start(timeout_s=90)
    yield kafka
    kafka.stop()


async def test_broker_restart_mid_stream_loses_nothing_acknowledged(own_broker: LocalKafka) -> None:
    topic = f"test.restart.{uuid.uuid4().hex[:8]}"
    await create_topic(own_broker.bootstrap_servers, topic, partitions=3)
    producer_side, consumer_side = (
        kit(own_broker.bootstrap_servers),
        kit(own_broker.bootstrap_servers, "reader"),
    )
    received: set[int] = set()

    async def collect(raws: list[RawMessage]) -> None:
        received.update(json.loads(r.value or b"")["seq"] for r in raws)

    consumer_side.on_raw(topic, group_id="restart-reader")(collect)
    acknowledged: set[int] = set()

    async def produce(sequence: range) -> None:
        for seq in sequence:
            try:
                await producer_side.broker.publish(
                    json.dumps({"seq": seq}).encode(), topic, key=str(seq).encode()
                )
                acknowledged.add(seq)
            except KafkaError:
                pass  # not acknowledged: the producer may drop it, the test only demands the acked ones

    async with producer_side.broker, consumer_side.broker:
        await producer_side.broker.start()
        await consumer_side.broker.start()
        await produce(range(0, 300))
        await wait_until(lambda: len(received) >= 150, what="the consumer to be mid-stream")

        old_pid = own_broker.pid()
        await asyncio.to_thread(own_broker.stop)
        await asyncio.to_thread(own_broker.start, 90)
        assert own_broker.pid() not in (None, old_pid)

        await produce(range(300, 600))
        await wait_until(lambda: acknowledged <= received, timeout_s=90, what="every acknowledged message")

    assert len(acknowledged) >= 590, "the producer should recover after the restart"
    assert acknowledged <= received
