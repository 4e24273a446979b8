"""What the fault-injection run reads once the stack is quiet: whole topics from Kafka, consumer group
offsets, the audit store (SQLite, read-only) and Feast's online store. Turns them into the plain
values `bench/chaos_checks.py` compares."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.chaos_checks import CleanRecord, Message, Outcome
from contracts.topics import RECORDS_CLEAN, RECORDS_RAW, RECORDS_REJECTED
from infra.bus_access import kafka_options

Records = list[ConsumerRecord[bytes, bytes]]
Ends = dict[tuple[str, int], int]


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> Ends:
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    # Let the consumer's background task begin: stopped before it ran, aiokafka 0.14 raises CancelledError.
    await asyncio.sleep(0.1)
    try:
        partitions = await _partitions(consumer, topics)
        ends = await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}


async def read_topics(bootstrap: str, topics: Iterable[str], timeout_s: float = 300) -> Records:
    """Every message of `topics` from the beginning up to the end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(
        **kafka_options(bootstrap),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    records: Records = []
    try:
        partitions = await _partitions(consumer, topics)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:  # seek_to_beginning resets lazily: position() then sometimes says "at the end"
            consumer.seek(tp, 0)
        deadline = time.monotonic() + timeout_s
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {sorted(map(str, pending))} to their ends")
            for tp, batch in (await consumer.getmany(*pending, timeout_ms=500)).items():
                records += [r for r in batch if r.offset < ends[tp]]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return records


async def _partitions(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of `topics`; a topic the broker does not know is an error, not an empty read."""
    cluster = await consumer._client.fetch_all_metadata()  # topics() returns names only, no partitions
    found = []
    for topic in topics:
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise LookupError(f"topic {topic} is unknown to the broker")
        found += [TopicPartition(topic, partition) for partition in sorted(partitions)]
    return found


async def committed(bootstrap: str, group: str) -> Ends:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def wait_caught_up(bootstrap: str, group: str, ends: Ends, timeout_s: float) -> bool:
    """True once `group` has committed at least `ends` on every partition it must have read."""
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done = await committed(bootstrap, group)
        except Exception:  # a coordinator still loading after a broker restart: ask again
            done = {}
        if all(done.get(tp, 0) >= end for tp, end in wanted.items()):
            return True
        await asyncio.sleep(2)
    return False


# -- Kafka records -> check inputs ------------------------------------------------------------------
def raw_coordinates(records: Records) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records if r.topic == RECORDS_RAW]


def outcomes(records: Records) -> list[Outcome]:
    found = []
    for record in records:
        if record.topic in (RECORDS_CLEAN, RECORDS_REJECTED):
            event = json.loads(record.value or b"{}")
            source = event["payload"]["source"]
            if source["topic"] == RECORDS_RAW:
                found.append(
                    Outcome((source["partition"], source["offset"]), event["event_id"], event["event_type"])
                )
    return found


def clean_records(records: Records) -> list[CleanRecord]:
    found = []
    for record in records:
        if record.topic == RECORDS_CLEAN:
            payload = json.loads(record.value or b"{}")["payload"]
            raw = (payload["source"]["partition"], payload["source"]["offset"])
            found.append(CleanRecord(payload["entity_id"], raw, payload["record"]))
    return found


def kafka_messages(records: Records, content_free: Iterable[str] = (RECORDS_RAW,)) -> list[Message]:
    """Each message with its digest and, for enveloped topics, its event id (as the audit reads it)."""
    opaque = set(content_free)
    found = []
    for r in records:
        value = r.value or b""
        found.append(Message((r.topic, r.partition, r.offset), hashlib.sha256(value).hexdigest(),
                             None if r.topic in opaque else _event_id(value)))  # fmt: skip
    return found


def _event_id(value: bytes) -> str | None:
    try:
        event_id = json.loads(value).get("event_id")
    except (ValueError, AttributeError):
        return None
    return event_id.lower() if isinstance(event_id, str) else None


# -- the stores -------------------------------------------------------------------------------------
def audit_rows(database: Path) -> list[Message]:
    """Every row of the audit store (read-only, while the service may still be writing)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute('SELECT topic, "partition", "offset", value_sha256, event_id FROM audit_events')
        return [Message((t, p, o), digest, event_id) for t, p, o, digest, event_id in rows]


def online_features(repo_dir: Path, project: str, entities: list[str]) -> dict[str, dict[str, Any] | None]:
    """Feast's online values of every feature per entity (None where the store has no row)."""
    from feature_repo import ENTITY_KEY, FEATURES, FeatureStoreSettings, feature_refs, open_store

    store = open_store(FeatureStoreSettings(repo_dir=repo_dir, project=project))
    found: dict[str, dict[str, Any] | None] = {}
    for start in range(0, len(entities), 500):
        chunk = entities[start : start + 500]
        table = store.get_online_features(
            features=feature_refs(), entity_rows=[{ENTITY_KEY: e} for e in chunk]
        )
        columns = table.to_dict()
        for i, entity in enumerate(columns[ENTITY_KEY]):
            row = {name: columns[name][i] for name in FEATURES}
            found[str(entity)] = None if all(v is None for v in row.values()) else row
    return found
