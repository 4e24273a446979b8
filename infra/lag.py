"""How far behind each consumer group of the stack is: end offsets minus committed offsets, read
from the broker. The demo uses it to say when its stream is through the whole platform (clean or
rejected, features online, in the audit chain), the platform benchmark to say when a phase ends."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition


class LagReader:
    """Lag of every consumer group of the stack: end offsets minus committed offsets, summed."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
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
        """Groups whose name starts with one of `prefixes` -> total lag. A partition a group has not
        committed on yet counts from `start_ends` (where the phase began; the start of a partition it
        does not name); `required` (group, topic)
        pairs count even before their group has committed anything."""
        groups = {g[0] for g in await self.admin.list_consumer_groups() if str(g[0]).startswith(prefixes)}
        groups |= {group for group, _ in required}
        lags: dict[str, int] = {}
        for group in sorted(groups):
            committed = await self.admin.list_consumer_group_offsets(group)
            topics = {tp.topic for tp in committed} | {t for g, t in required if g == group}
            ends = await self.end_offsets(sorted(topics))
            lag = 0
            for tp, end in ends.items():
                meta = committed.get(tp)
                position = meta.offset if meta is not None and meta.offset >= 0 else start_ends.get(tp, 0)
                lag += max(end - position, 0)
            lags[group] = lag
        return lags


# The consumer groups a record must pass, by their services' settings: ingest decided it, the
# features service pushed its features online, the audit service chained it (raw and clean).
THROUGH_THE_PLATFORM = (
    ("ingest", "records.raw"),
    ("features", "records.clean"),
    ("audit.records.raw", "records.raw"),
    ("audit.records.clean", "records.clean"),
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
                lags = await reader.lag_by_group(tuple(g for g, _ in required), start_ends, required)
                if not any(lags.get(group, 0) for group, _ in required):
                    return True
                await asyncio.sleep(0.2)
            return False
        finally:
            await reader.stop()

    return asyncio.run(poll())
