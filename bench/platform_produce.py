"""The producing side of the platform benchmark: demo records streamed into records.raw (with their
labels), and the raw broker's own rates on a fresh topic (the baseline each phase is read against)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.topics import LABELS_OBSERVED, RECORDS_RAW
from infra.bus_access import kafka_options
from infra.topics import TopicPlan, ensure_topics_async


async def produce(
    bootstrap: str, items: list[tuple[bytes, bytes, bytes]], rate: float, topic: str = RECORDS_RAW
) -> float:
    """Send every record (and its label, unless `topic` is a baseline topic); pace at `rate` per second
    (0: as fast as acks come). Returns the seconds until the last acknowledgement."""
    producer = AIOKafkaProducer(
        **kafka_options(bootstrap), acks="all", enable_idempotence=True, linger_ms=5,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await producer.start()
    started = time.monotonic()
    try:
        futures = []
        for i, (key, value, label) in enumerate(items):
            if rate > 0 and i % 10 == 0:
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            futures.append(await producer.send(topic, value, key))
            if topic == RECORDS_RAW:
                futures.append(await producer.send(LABELS_OBSERVED, label, key))
            if len(futures) >= 2000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
        return time.monotonic() - started
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, **kafka_options(bootstrap), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    started, seen = time.monotonic(), 0
    try:
        while seen < expected:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                seen += len(records)
        return time.monotonic() - started
    finally:
        await consumer.stop()


async def baseline(bootstrap: str, items: list[tuple[bytes, bytes, bytes]]) -> dict[str, float]:
    topic = f"bench.baseline.{int(time.time())}"
    # As records.raw: 3 partitions, replicated over every node (and so min.insync.replicas 2 of 3 in
    # the cluster profile, which its broker default sets).
    replicas = len(bootstrap.split(","))
    await ensure_topics_async(bootstrap, [TopicPlan(topic, 3, replicas)])
    produce_s = await produce(bootstrap, items, 0, topic)
    consume_s = await consume_all(bootstrap, topic, len(items))
    serial = await produce_serially(bootstrap, items[:SERIAL_RECORDS], topic)
    return {
        "produce_per_s": len(items) / produce_s, "consume_per_s": len(items) / consume_s,
        "serial_produce_per_s": serial,
    }  # fmt: skip


# Records of the serial probe: enough for a stable round-trip figure, few enough to take seconds.
SERIAL_RECORDS = 300


async def produce_serially(bootstrap: str, items: list[tuple[bytes, bytes, bytes]], topic: str) -> float:
    """Records/s of a producer that awaits each record's acknowledgement before sending the next, as
    `mlops demo`'s producer (workbench/demo_producer.py) does: one acks=all round trip per record."""
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        for key, value, _ in items:
            await (await producer.send(topic, value, key))
        return len(items) / (time.monotonic() - started)
    finally:
        await producer.stop()
