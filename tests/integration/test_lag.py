"""How the demo and the platform benchmark tell that a stream went through the platform: a consumer
group's committed offsets against the topic's end, read from the real broker."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from infra.lag import LagReader, end_offsets_now, wait_caught_up
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


async def test_one_group_over_several_topics_is_caught_up_per_topic_and_retired_groups_are_left_out(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    """The audit reads every topic with one group: the demo waits for it on records.raw and
    records.clean alone, and the groups of the old layout (`audit.<topic>`) no longer count as lag."""
    other = f"{unique_topic}.other"
    for topic in (unique_topic, other):
        await create_topic(kafka_bootstrap, topic, partitions=1)
    run = uuid.uuid4().hex[:8]
    group, retired = f"lagmulti{run}", f"audit.{run}"
    start = await asyncio.to_thread(end_offsets_now, kafka_bootstrap, [unique_topic, other])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for topic in (unique_topic, other):
        for _ in range(3):
            await producer.send_and_wait(topic, b"x")
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    stale = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=retired, enable_auto_commit=False)
    await consumer.start()
    await stale.start()
    consumer.assign([TopicPartition(unique_topic, 0), TopicPartition(other, 0)])
    stale.assign([TopicPartition(other, 0)])
    try:
        await consumer.commit({TopicPartition(unique_topic, 0): OffsetAndMetadata(3, "")})
        await stale.commit({TopicPartition(other, 0): OffsetAndMetadata(0, "")})
        caught_up = await asyncio.to_thread(
            wait_caught_up, kafka_bootstrap, start, ((group, unique_topic),), timeout_s=5.0
        )
        assert caught_up  # behind on `other`, but only `unique_topic` was asked for
        reader = LagReader(kafka_bootstrap)
        await reader.start()
        try:
            required = ((group, unique_topic), (group, other))
            assert await reader.lag_of(required, start) == {(group, unique_topic): 0, (group, other): 3}
            lags = await reader.lag_by_group((group, "audit"), start, required)
            assert lags[group] == 3 and retired not in lags
        finally:
            await reader.stop()
    finally:
        await consumer.stop()
        await stale.stop()
