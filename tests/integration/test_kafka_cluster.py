"""The cluster profile's bus: three locked-down KRaft brokers from the same jars. Topics have three
replicas and need two in sync; `kill -9` of the broker that leads a record partition, mid-stream,
loses no acknowledged record and doubles none (acks=all, idempotent producer), and the killed broker
rejoins the in-sync replicas when it is back."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bench.broker_failover import failover_producer
from contracts.topics import RECORDS_RAW, TOPICS
from infra import bus_access
from infra.kafka_cluster import LocalKafkaCluster
from infra.topics import ensure_topics, platform_topics
from tests.conftest import TEST_STATE_DIR
from tests.support import TEST_KAFKA_PORT

PORT = TEST_KAFKA_PORT + 1000  # nodes on PORT, PORT + 10, PORT + 20 (controllers one above each)
RECORD_PARTITIONS = 3
RECORDS = 3000
KILL_AT = RECORDS // 3


@pytest.fixture(scope="module")
def cluster(jars_dir: Path) -> Iterator[LocalKafkaCluster]:
    home = TEST_STATE_DIR / "kafka-cluster"
    shutil.rmtree(home, ignore_errors=True)  # a fresh cluster, formatted with its super user here
    kafka = LocalKafkaCluster(home=home, jars_dir=jars_dir, port=PORT, secrets_dir=home / "secrets")
    try:
        kafka.start(timeout_s=180)
        ensure_topics(kafka.bootstrap_servers, platform_topics(RECORD_PARTITIONS, 1, kafka.replication))
        yield kafka
    finally:
        kafka.stop()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.5)


async def _topic_config(cluster: LocalKafkaCluster, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(**bus_access.kafka_options(cluster.bootstrap_servers))
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [resource] = response.resources
        return {entry[0]: entry[1] for entry in resource[4]}
    finally:
        await admin.close()


def test_platform_topics_have_three_replicas_and_need_two_in_sync(cluster: LocalKafkaCluster) -> None:
    assert len([pid for pid in cluster.pids().values() if pid]) == 3
    for spec in TOPICS:
        partitions = cluster.partitions(spec.name)
        assert len(partitions) == (RECORD_PARTITIONS if spec.record_topic else 1), spec.name
        assert all(sorted(p["replicas"]) == [1, 2, 3] for p in partitions.values()), spec.name
    record_topics = [spec.name for spec in TOPICS if spec.record_topic]
    wait_for(
        lambda: all(
            sorted(p["isr"]) == [1, 2, 3] for t in record_topics for p in cluster.partitions(t).values()
        ),
        60,
        "every record partition to have three in-sync replicas",
    )
    # Leaders are spread over the brokers, so a broker's loss touches some partitions, not all.
    assert len({cluster.leader_of(RECORDS_RAW, p) for p in range(RECORD_PARTITIONS)}) > 1
    config = asyncio.run(_topic_config(cluster, RECORDS_RAW))
    assert config["min.insync.replicas"] == "2"
    assert config["unclean.leader.election.enable"] == "false"  # no acknowledged record is ever dropped


async def _produce(cluster: LocalKafkaCluster, victim: int) -> tuple[list[BaseException], int]:
    """RECORDS numbered records at a steady pace, `victim` killed when KILL_AT have been sent. Returns
    the sends that failed and the pid killed."""
    producer = failover_producer(cluster)
    await producer.start()
    killing: asyncio.Task[int] | None = None
    try:
        sent = []
        for number in range(RECORDS):
            if number == KILL_AT:
                killing = asyncio.create_task(asyncio.to_thread(cluster.kill, victim))
            key = str(number).encode()
            sent.append(await producer.send(RECORDS_RAW, key, key=key))
            await asyncio.sleep(0.004)
        results = await asyncio.gather(*sent, return_exceptions=True)
    finally:
        await producer.stop()
    assert killing is not None
    return [r for r in results if isinstance(r, BaseException)], await killing


async def _read_all(cluster: LocalKafkaCluster) -> Counter[int]:
    """Every record of records.raw, from the beginning to the end offsets, by its number."""
    consumer = AIOKafkaConsumer(
        **cluster.client_options("ingest"), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(RECORDS_RAW, p) for p in range(RECORD_PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        seen: Counter[int] = Counter()
        deadline = time.monotonic() + 90
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "the consumer did not reach the end offsets"
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                seen.update(int(m.value or b"-1") for m in messages)
        return seen
    finally:
        await consumer.stop()


def test_killing_a_partition_leader_mid_stream_loses_nothing_and_doubles_nothing(
    cluster: LocalKafkaCluster,
) -> None:
    victim = cluster.leader_of(RECORDS_RAW, 0)
    assert victim is not None

    failed, killed_pid = asyncio.run(_produce(cluster, victim))

    assert not failed, f"{len(failed)} sends were not acknowledged, e.g. {failed[0]!r}"
    assert cluster.pids()[victim] is None and killed_pid
    new_leader = cluster.leader_of(RECORDS_RAW, 0)
    assert new_leader not in (None, victim)
    assert victim not in cluster.partitions(RECORDS_RAW)[0]["isr"]

    seen = asyncio.run(_read_all(cluster))
    missing = sorted(set(range(RECORDS)) - set(seen))
    twice = sorted(number for number, count in seen.items() if count > 1)
    assert not missing, f"{len(missing)} acknowledged records are missing, e.g. {missing[:10]}"
    assert not twice, f"{len(twice)} records were written twice, e.g. {twice[:10]}"
    assert set(seen) == set(range(RECORDS))

    assert cluster.start_node(victim, timeout_s=120)
    wait_for(
        lambda: all(victim in p["isr"] for p in cluster.partitions(RECORDS_RAW).values()),
        120,
        f"node {victim} to rejoin the in-sync replicas of {RECORDS_RAW}",
    )
