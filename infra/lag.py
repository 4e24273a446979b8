"""How far behind each consumer group of the stack is: end offsets minus committed offsets, read
from the broker. The demo uses it to say when its stream is through the whole platform (clean or
rejected, features online, in the audit chain), the platform benchmark to say when a phase ends."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from infra.bus_access import kafka_options


class LagReader:
    """Lag of every consumer group of the stack: end offsets minus committed offsets, summed."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
        self.offsets = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None)
        self._partitions: dict[str, list[int]] = {}

    async def start(self) -> None:
        await self.admin.start()
        await self.offsets.start()

    async def stop(self) -> None:
        await self.offsets.stop()
        await self.admin.close()

    async def end_offsets(self, topics: list[str]) -> dict[TopicPartition, int]:
        missing = [t for t in topics if t not in self._partitions]
        if missing:
            for described in await self.admin.describe_topics(missing):
                self._partitions[described["topic"]] = [p["partition"] for p in described["partitions"]]
        partitions = [TopicPartition(t, p) for t in topics for p in self._partitions.get(t, [])]
        return dict(await self.offsets.end_offsets(partitions)) if partitions else {}

    async def lag_by_group(
        self,
        prefixes: tuple[str, ...],
        start_ends: dict[TopicPartition, int],
        required: tuple[tuple[str, str], ...] = (),
    ) -> dict[str, int]:
        """Groups whose name starts with one of `prefixes` -> total lag over every topic they read. A
        partition a group has not committed on yet counts from `start_ends` (where the phase began; the
        start of a partition it does not name); `required` (group, topic) pairs count even before their
        group has committed anything. Retired groups (`RETIRED_GROUPS`) are left out."""
        listed = {str(g[0]) for g in await self.admin.list_consumer_groups()}
        groups = {g for g in listed if g.startswith(prefixes) and not g.startswith(RETIRED_GROUPS)}
        groups |= {group for group, _ in required}
        lags: dict[str, int] = {}
        for group in sorted(groups):
            committed = await self.admin.list_consumer_group_offsets(group)
            topics = {tp.topic for tp in committed} | {t for g, t in required if g == group}
            lags[group] = sum((await self._lags(committed, sorted(topics), start_ends)).values())
        return lags

    async def lag_of(
        self, required: tuple[tuple[str, str], ...], start_ends: dict[TopicPartition, int]
    ) -> dict[tuple[str, str], int]:
        """(group, topic) -> the group's lag on that topic alone (one group may read many: the audit
        reads every topic with one), counted from `start_ends` where it has not committed yet."""
        lags: dict[tuple[str, str], int] = {}
        for group in dict.fromkeys(g for g, _ in required):
            committed = await self.admin.list_consumer_group_offsets(group)
            for topic in dict.fromkeys(t for g, t in required if g == group):
                lags[group, topic] = sum((await self._lags(committed, [topic], start_ends)).values())
        return lags

    async def _lags(
        self,
        committed: dict[TopicPartition, OffsetAndMetadata],
        topics: list[str],
        start_ends: dict[TopicPartition, int],
    ) -> dict[TopicPartition, int]:
        lags = {}
        for tp, end in (await self.end_offsets(topics)).items():
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else start_ends.get(tp, 0)
            lags[tp] = max(end - position, 0)
        return lags


# Groups no service commits on any more, whose lag would only grow on a stack upgraded in place: the
# audit read each topic with a group of its own, `audit.<topic>`, until it read them all with one, and
# so did drift its three streams (its model.* groups are still in use).
RETIRED_GROUPS = ("audit.", "drift.records.", "drift.predictions.", "drift.labels.")

# The consumer groups a record must pass, by their services' settings: ingest decided it, the
# features service pushed its features online, the audit service chained it (raw and clean; one
# group reads every topic the audit captures).
THROUGH_THE_PLATFORM = (
    ("ingest", "records.raw"),
    ("features", "records.clean"),
    ("audit", "records.raw"),
    ("audit", "records.clean"),
)


def end_offsets_now(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    async def read() -> dict[TopicPartition, int]:
        reader = LagReader(bootstrap)
        await reader.start()
        try:
            return await reader.end_offsets(topics)
        finally:
            await reader.stop()

    return asyncio.run(read())


def wait_caught_up(
    bootstrap: str,
    start_ends: dict[TopicPartition, int],
    required: tuple[tuple[str, str], ...] = THROUGH_THE_PLATFORM,
    timeout_s: float = 300.0,
) -> bool:
    """Block until every `required` (group, topic) has committed up to the topic's end; False on time-out."""

    async def poll() -> bool:
        reader = LagReader(bootstrap)
        await reader.start()
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if not any((await reader.lag_of(required, start_ends)).values()):
                    return True
                await asyncio.sleep(0.2)
            return False
        finally:
            await reader.stop()

    return asyncio.run(poll())
