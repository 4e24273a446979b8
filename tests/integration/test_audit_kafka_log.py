"""KafkaLog, the port verify reads Kafka through, against the real broker: bounds, records at given
offsets, committed offsets of a consumer group, and the checkpoints published on a topic."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.events import AuditCheckpointed, AuditCheckpointedPayload
from contracts.registry import encode_event
from services.audit.adapters.kafka_log import KafkaLog
from services.audit.signing import CheckpointSigner, TrustedKeys
from tests.support import create_topic


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k", partition=0)
    finally:
        await producer.stop()


async def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): offset})
    finally:
        await consumer.stop()


def test_kafka_log_reads_bounds_records_commits_and_checkpoints(kafka_bootstrap: str) -> None:
    run = uuid.uuid4().hex[:10]
    topic, checkpoints = f"test.audit.{run}.log", f"test.audit.{run}.cp"
    asyncio.run(create_topic(kafka_bootstrap, topic, partitions=2))
    asyncio.run(create_topic(kafka_bootstrap, checkpoints))
    asyncio.run(_produce(kafka_bootstrap, topic, [f"v{i}".encode() for i in range(5)]))
    asyncio.run(_commit(kafka_bootstrap, f"audit-{run}", topic, 3))
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    payload = AuditCheckpointedPayload.model_validate(
        {"chain_length": 5, "head_hash": "ab" * 32, "covered_until": "2026-01-02T00:00:00Z"}
    )
    event = AuditCheckpointed.create(signer.sign(payload, "audit", "cd" * 32), producer="audit")
    asyncio.run(_produce(kafka_bootstrap, checkpoints, [b"not an event", encode_event(event)]))

    with KafkaLog(kafka_bootstrap, timeout_s=30) as log:
        assert log.bounds(topic) == {0: (0, 5), 1: (0, 0)}
        assert log.bounds(f"test.audit.{run}.missing") == {}
        assert [(r.offset, r.value) for r in log.records(topic, 0, 1, 4)] == [
            (1, b"v1"),
            (2, b"v2"),
            (3, b"v3"),
        ]
        assert log.committed(f"audit-{run}", topic) == {0: 3}
        assert log.committed(f"audit-{run}-never", topic) == {}
        [found] = log.checkpoints(checkpoints)
    assert found.where == f"{checkpoints}:0:1" and TrustedKeys([signer.public]).verifies(found.payload)
