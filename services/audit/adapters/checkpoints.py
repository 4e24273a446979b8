"""Read back, from Kafka, the checkpoints one audit chain published (to verify the store against them)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.events import AuditCheckpointed
from contracts.registry import ContractError, parse_event


async def read_checkpoints(bootstrap: str, topic: str, chain_id: str) -> dict[int, str]:
    """{chain length: head hash} of every checkpoint of `chain_id` on `topic`, from start to end."""
    numbers = await _partitions(bootstrap, topic)
    if not numbers:
        return {}
    partitions = [TopicPartition(topic, p) for p in numbers]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        anchors: dict[int, str] = {}
        while any([await consumer.position(tp) < end[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    _keep(anchors, record.value or b"", chain_id)
        return anchors
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(
        p["partition"]
        for t in described
        if t["topic"] == topic and not t["error_code"]
        for p in t["partitions"]
    )


def _keep(anchors: dict[int, str], value: bytes, chain_id: str) -> None:
    try:
        event = parse_event(value)
    except ContractError:
        return
    if isinstance(event, AuditCheckpointed) and event.correlation_id == chain_id:
        anchors[event.payload.chain_length] = event.payload.head_hash
