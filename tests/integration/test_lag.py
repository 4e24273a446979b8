"""How the demo and the platform benchmark tell that a stream went through the platform: a consumer
group's committed offsets against the topic's end, read from the real broker."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from infra.lag import end_offsets_now, wait_caught_up
from tests.support import create_topic


async def test_a_group_is_caught_up_only_once_it_committed_the_end(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    await create_topic(kafka_bootstrap, unique_topic, partitions=2)
    group = f"lag-{uuid.uuid4().hex[:8]}"
    start = await asyncio.to_thread(end_offsets_now, kafka_bootstrap, [unique_topic])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(unique_topic, b"x", partition=i % 2)
    await producer.stop()
    required = ((group, unique_topic),)

    def caught_up() -> bool:
        return wait_caught_up(kafka_bootstrap, start, required, timeout_s=1.0)

    assert not await asyncio.to_thread(caught_up)  # the group has committed nothing yet
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    consumer.assign([TopicPartition(unique_topic, 0), TopicPartition(unique_topic, 1)])
    try:
        await consumer.commit({TopicPartition(unique_topic, 0): OffsetAndMetadata(5, "")})
        assert not await asyncio.to_thread(caught_up)  # partition 1 still has 5 to go
        await consumer.commit({TopicPartition(unique_topic, 1): OffsetAndMetadata(5, "")})
        assert await asyncio.to_thread(caught_up)
    finally:
        await consumer.stop()
