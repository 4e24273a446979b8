"""Create the platform's topics (from contracts/) on any cluster, and probe whether a broker answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError

from contracts.topics import TOPICS
from infra.bus_access import kafka_options

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicPlan:
    name: str
    partitions: int
    replication_factor: int = 1


def platform_topics(
    record_partitions: int, other_partitions: int, replication_factor: int = 1
) -> list[TopicPlan]:
    """Every topic in the contracts, the high-volume ones with `record_partitions` partitions."""
    return [
        TopicPlan(spec.name, record_partitions if spec.record_topic else other_partitions, replication_factor)
        for spec in TOPICS
    ]


async def _broker_answers(bootstrap_servers: str) -> bool:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap_servers), request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (KafkaError, OSError):
        return False
    finally:
        await admin.close()


def broker_answers(bootstrap_servers: str) -> bool:
    """True when a broker answers a metadata request (an open port alone is not enough)."""
    return asyncio.run(_broker_answers(bootstrap_servers))


async def ensure_topics_async(bootstrap_servers: str, plans: Iterable[TopicPlan]) -> list[str]:
    """Create missing topics and grow ones with too few partitions. Returns the names created."""
    plans = list(plans)
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap_servers), request_timeout_ms=15000)
    await admin.start()
    try:
        existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
        missing = [p for p in plans if p.name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(p.name, p.partitions, p.replication_factor) for p in missing]
            )
            for name, code, *rest in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"creating topic {name} failed with Kafka error {code}: {rest}")
        too_small = {
            p.name: NewPartitions(p.partitions) for p in plans if 0 < existing.get(p.name, 0) < p.partitions
        }
        if too_small:
            await admin.create_partitions(too_small)
            log.info("grew partitions of %s", sorted(too_small))
        return [p.name for p in missing]
    finally:
        await admin.close()


def ensure_topics(bootstrap_servers: str, plans: Iterable[TopicPlan]) -> list[str]:
    return asyncio.run(ensure_topics_async(bootstrap_servers, plans))
