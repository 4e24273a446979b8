"""The Kafka side of `mlops replay`: check that the group is fresh, find the window to read (by offset
or by time) and its end offsets, commit the window's start into the fresh group, and follow the
group's commits to the window's end.

The start is committed before the replay process starts, so the service's own consumer begins there
like any consumer with committed offsets (no seek in the service). Every partition a group reads gets a
commit, those outside `--topic` at their end, so nothing outside the window is read.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from infra.bus_access import kafka_options
from infra.lag import LagReader


class ReplayRefused(Exception):
    """Bad input for a replay: said in one line, exit code 2."""


@dataclass(frozen=True)
class Start:
    """Where the window begins on every partition: one offset, or the first record at or after a time."""

    offset: int | None = None
    time: datetime | None = None

    def describe(self) -> str:
        return f"offset {self.offset}" if self.time is None else f"time {self.time.isoformat()}"


@dataclass
class Window:
    """[start, end) per partition of the selected topics; the other topics of a group are skipped
    (their start is their end). `groups` maps each consumer group to the topics it reads."""

    groups: dict[str, list[str]]
    starts: dict[TopicPartition, int] = field(default_factory=dict)
    ends: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(self.ends[tp] - self.starts[tp] for tp in self.ends)

    def stop_offsets(self) -> dict[str, dict[int, int]]:
        stops: dict[str, dict[int, int]] = {}
        for tp, end in self.ends.items():
            stops.setdefault(tp.topic, {})[tp.partition] = end
        return stops

    def read(self) -> list[tuple[TopicPartition, int, int]]:
        """The partitions with something to read: (partition, from, to)."""
        return [(tp, self.starts[tp], end) for tp, end in sorted(self.ends.items()) if end > self.starts[tp]]

    def done(self, committed: dict[TopicPartition, int]) -> int:
        return sum(min(max(committed.get(tp, s), s), self.ends[tp]) - s for tp, s in self.starts.items())


class ReplayKafka:
    """The admin and offset clients a replay needs, started and stopped together."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.lag = LagReader(bootstrap)
        self.admin: AIOKafkaAdminClient = self.lag.admin
        self.offsets: AIOKafkaConsumer = self.lag.offsets

    async def __aenter__(self) -> ReplayKafka:
        try:
            await self.lag.start()
        except BaseException:
            with contextlib.suppress(Exception):  # close what did start; the first error is the one to say
                await self.lag.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.lag.stop()

    async def refuse_live_groups(self, groups: list[str]) -> None:
        """A replay goes into a fresh group: one that exists (committed offsets or members) is refused."""
        listed = {str(g[0]) for g in await self.admin.list_consumer_groups()}
        for group in groups:
            if group in listed or await self.admin.list_consumer_group_offsets(group):
                raise ReplayRefused(
                    f"consumer group {group!r} already exists (committed offsets or live members): "
                    "a replay reads into a fresh group, name a new one with --group"
                )

    async def window(self, groups: dict[str, list[str]], selected: set[str], start: Start) -> Window:
        window = Window(groups)
        topics = sorted({t for ts in groups.values() for t in ts})
        existing = set(await self.offsets.topics())
        if missing := [t for t in topics if t not in existing]:
            raise ReplayRefused(f"topic {missing[0]!r} does not exist on the cluster")
        window.ends = await self.lag.end_offsets(topics)
        firsts = await self.offsets.beginning_offsets(list(window.ends))
        chosen = [tp for tp in window.ends if tp.topic in selected]
        for tp in window.ends:
            window.starts[tp] = window.ends[tp]  # skipped unless selected
        if start.time is not None:
            window.starts.update(await self._by_time(chosen, start.time, window.ends))
        else:
            window.starts.update(_by_offset(chosen, start.offset or 0, firsts, window.ends))
        return window

    async def _by_time(
        self, chosen: list[TopicPartition], when: datetime, ends: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        found = await self.offsets.offsets_for_times(dict.fromkeys(chosen, int(when.timestamp() * 1000)))
        if not any(hit is not None for hit in found.values()):
            raise ReplayRefused(
                f"no record at or after {when.isoformat()}: that is after the log's last record"
            )
        return {tp: hit.offset if hit is not None else ends[tp] for tp, hit in found.items()}

    async def commit_starts(self, window: Window) -> None:
        """The window's first offsets, committed into each fresh group (a simple, unsubscribed commit)."""
        for group, topics in window.groups.items():
            consumer = AIOKafkaConsumer(
                **kafka_options(self.bootstrap), group_id=group, enable_auto_commit=False
            )
            await consumer.start()
            try:
                starts = {tp: s for tp, s in window.starts.items() if tp.topic in topics}
                consumer.assign(list(starts))
                await consumer.commit({tp: OffsetAndMetadata(s, "") for tp, s in starts.items()})
            finally:
                await consumer.stop()

    async def committed(self, window: Window) -> dict[TopicPartition, int]:
        positions: dict[TopicPartition, int] = {}
        for group, topics in window.groups.items():
            for tp, meta in (await self.admin.list_consumer_group_offsets(group)).items():
                if tp.topic in topics and meta.offset >= 0:
                    positions[tp] = meta.offset
        return positions


def _by_offset(
    chosen: list[TopicPartition],
    offset: int,
    firsts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    for tp in sorted(chosen):
        if not firsts[tp] <= offset <= ends[tp]:
            raise ReplayRefused(
                f"offset {offset} does not exist on {tp.topic} partition {tp.partition}, "
                f"which holds offsets {firsts[tp]}..{ends[tp] - 1} (the end, {ends[tp]}, reads nothing)"
            )
    return dict.fromkeys(chosen, offset)
