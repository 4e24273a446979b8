"""What bench/rebalance_time.py reads from the bus: a consumer group's state and its members'
partitions (DescribeGroups, each member's assignment decoded as the consumer protocol encodes it),
its committed offsets and the end offsets of what it reads, as one `Sample`; and the consumer settings
the services' consumers really run with (servicekit's subscriber on the installed FastStream and
aiokafka), which bound how fast a group notices a dead member."""

from __future__ import annotations

import inspect
import time
from importlib.metadata import version
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.structs import TopicPartition

from bench.rebalance_figures import TP, GroupView, Sample
from infra.lag import LagReader

# DescribeGroups v0-v3 (what aiokafka 0.14 speaks): each group is (error_code, group, state,
# protocol_type, protocol, members[, authorized_operations]); each member (member_id, client_id,
# client_host, member_metadata, member_assignment).
_GROUP_STATE, _GROUP_MEMBERS = 2, 5
_MEMBER_ID, _MEMBER_ASSIGNMENT = 0, 4


def decode_assignment(raw: bytes | None) -> frozenset[TP]:
    """A member's partitions from its ConsumerProtocolMemberAssignment bytes (empty while the group
    is rebalancing: the coordinator holds no assignment for a member then)."""
    if not raw:
        return frozenset()
    assignment = ConsumerProtocol.ASSIGNMENT.decode(raw)
    return frozenset(
        (topic, partition) for topic, partitions in assignment.assignment for partition in partitions
    )


def parse_group(described: tuple[Any, ...]) -> GroupView:
    """One group of a DescribeGroups response as a `GroupView`."""
    members = {
        str(member[_MEMBER_ID]): decode_assignment(member[_MEMBER_ASSIGNMENT])
        for member in described[_GROUP_MEMBERS]
    }
    return GroupView(str(described[_GROUP_STATE]), members)


class GroupProbe(LagReader):
    """Reads one consumer group of the stack: `sample()` is one DescribeGroups, one OffsetFetch and
    the end offsets of every partition the group has been seen to read."""

    def __init__(self, bootstrap: str, group: str) -> None:
        super().__init__(bootstrap)  # its admin client and offsets consumer, started and stopped alike
        self.group = group
        self.partitions: set[TP] = set()  # every partition any member held while probed
        self._coordinator: int | None = None

    async def view(self) -> GroupView:
        if self._coordinator is None:
            self._coordinator = await self.admin.find_coordinator(self.group)
        try:
            responses = await self.admin.describe_consumer_groups([self.group], self._coordinator)
        except Exception:
            self._coordinator = None  # it may have moved: find it again next time
            raise
        for response in responses:
            for described in response.groups:
                if described[1] == self.group:
                    return parse_group(described)
        return GroupView("Dead", {})

    async def sample(self, since: float, streaming: bool) -> Sample:
        """The group now, stamped in seconds since `since` (a time.monotonic()) when its state was read."""
        view = await self.view()
        stamped = time.monotonic() - since
        for partitions in view.members.values():
            self.partitions |= partitions
        fetched = await self.admin.list_consumer_group_offsets(self.group, self._coordinator)
        committed = {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in fetched.items()
            if (tp.topic, tp.partition) in self.partitions and meta.offset >= 0
        }
        wanted = [TopicPartition(topic, partition) for topic, partition in sorted(self.partitions)]
        ends = await self.offsets.end_offsets(wanted) if wanted else {}
        return Sample(
            round(stamped, 3), view, committed, {(tp.topic, tp.partition): end for tp, end in ends.items()},
            streaming,
        )  # fmt: skip


# The consumer settings that bound the figures: how long the coordinator waits for a silent member
# (session), how often a live member hears of a rebalance (heartbeat), how long a rebalance waits for
# members to rejoin, and how long a member may take between polls before it is thrown out.
BOUNDING = (
    "session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms", "rebalance_timeout_ms",
    "partition_assignment_strategy", "enable_auto_commit",
)  # fmt: skip


def consumer_settings() -> dict[str, Any]:
    """The settings every service consumer gets: servicekit.subscribers.kafka_subscriber builds the
    FastStream subscriber, FastStream passes its options (its own defaults for what servicekit leaves
    out) to aiokafka's consumer, and aiokafka fills what is left (a rebalance timeout of None becomes
    the session timeout). Read from the installed packages, not copied: an upgrade shows here.
    `source` says who chose each value: servicekit (differs from FastStream's default), FastStream's
    default, or aiokafka's."""
    from faststream.kafka import KafkaBroker

    from servicekit.subscribers import kafka_subscriber

    broker = KafkaBroker("127.0.0.1:9")  # never connected: only the subscriber's options are read
    subscriber = kafka_subscriber(broker, "bench", ("bench",), "bench", batch=True, description="")
    passed: dict[str, Any] = dict(getattr(subscriber, "_connection_args", {}))
    faststream = {k: p.default for k, p in inspect.signature(KafkaBroker.subscriber).parameters.items()}
    aiokafka = {k: p.default for k, p in inspect.signature(AIOKafkaConsumer).parameters.items()}
    effective: dict[str, Any] = {}
    source: dict[str, str] = {}
    for key in BOUNDING:
        if key in passed:
            effective[key] = passed[key]
            same = key in faststream and faststream[key] == passed[key]
            source[key] = "faststream default" if same else "servicekit / faststream"
        else:
            effective[key], source[key] = aiokafka.get(key), "aiokafka default"
    if effective["rebalance_timeout_ms"] is None:  # aiokafka's AIOKafkaConsumer.__init__
        effective["rebalance_timeout_ms"] = effective["session_timeout_ms"]
        source["rebalance_timeout_ms"] += " (None: aiokafka uses session_timeout_ms)"
    effective["partition_assignment_strategy"] = [
        getattr(assignor, "name", str(assignor)) for assignor in effective["partition_assignment_strategy"]
    ]
    versions = {name: version(name) for name in ("aiokafka", "faststream")}
    return {**effective, "source": source, "versions": versions}
