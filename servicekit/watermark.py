"""Stream watermarks: "everything published to this topic before now" as end offsets per partition,
and a consumer's side of it, the positions it has consumed up to, so that a use case can wait until a
consumer has caught up with a watermark taken earlier (e.g. training waits until every label published
before the request is stored) instead of sleeping and hoping.

Offsets follow Kafka's convention: an end offset and a position are the offset of the NEXT record, so
a partition is caught up when its position is at least the watermark's offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.common import KafkaCoordinates
from servicekit.settings import ServiceSettings

log = logging.getLogger(__name__)

Offsets = dict[int, int]  # partition -> offset of the next record
ReadOffsets = Callable[[], Awaitable[Offsets]]


def security_options(settings: ServiceSettings) -> dict[str, Any]:
    """The platform's Kafka security settings as aiokafka client arguments (the services' own broker
    gets the same through FastStream: servicekit.broker.kafka_security)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        options["ssl_context"] = ssl.create_default_context()
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username or "",
            "sasl_plain_password": password.get_secret_value() if password else "",
        }
    return options


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """The platform's broker and security settings as aiokafka client arguments."""
    return {"bootstrap_servers": settings.kafka_servers} | security_options(settings)


async def end_offsets(settings: ServiceSettings, topic: str, timeout_s: float = 10.0) -> Offsets:
    """The topic's end offset per partition, now (short-lived clients: asked for rarely)."""
    options = client_options(settings) | {"request_timeout_ms": int(timeout_s * 1000)}
    admin, consumer = AIOKafkaAdminClient(**options), AIOKafkaConsumer(group_id=None, **options)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        [described] = await asyncio.wait_for(admin.describe_topics([topic]), timeout_s)
        partitions = sorted(p["partition"] for p in described.get("partitions") or ())
        if described.get("error_code") or not partitions:
            raise LookupError(f"topic {topic!r} has no partitions (does it exist?)")
        await asyncio.wait_for(consumer.start(), timeout_s)
        ends = await asyncio.wait_for(
            consumer.end_offsets([TopicPartition(topic, p) for p in partitions]), timeout_s
        )
        return {tp.partition: int(offset) for tp, offset in ends.items()}
    finally:
        await consumer.stop()
        await admin.close()


async def committed_offsets(
    settings: ServiceSettings, group_id: str, topic: str, timeout_s: float = 10.0
) -> Offsets:
    """What the consumer group has committed on the topic (partitions it never committed on are absent)."""
    admin = AIOKafkaAdminClient(request_timeout_ms=int(timeout_s * 1000), **client_options(settings))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        committed = await asyncio.wait_for(admin.list_consumer_group_offsets(group_id), timeout_s)
    finally:
        await admin.close()
    return {
        tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic and meta.offset >= 0
    }


@dataclass(frozen=True)
class CatchUp:
    """How a wait for a watermark ended: `short` holds, per partition not reached, how many records were
    still missing when the bound passed (empty when every partition was reached)."""

    watermark: Offsets
    short: Offsets
    waited_s: float

    @property
    def reached(self) -> bool:
        return not self.short

    def summary(self) -> dict[str, Any]:
        return {
            "watermark": {str(p): o for p, o in sorted(self.watermark.items())},
            "reached": self.reached,
            "partitions_short": len(self.short),
            "records_short": sum(self.short.values()),
            "waited_s": round(self.waited_s, 3),
        }


@dataclass
class ConsumedOffsets:
    """Positions a consumer has handled on one topic, recorded by its handler after the effect (e.g. the
    batch is stored), and a wait until they reach a watermark.

    `committed` reads the group's committed offsets from the broker: they count as consumed (the
    consumer resumes there after a restart, so the records before them were handled by an earlier
    run), and they also cover records the consumer acknowledged without handling (dead-lettered ones),
    which its handler never records. It is read when a wait starts short and every `refresh_s`.
    """

    committed: ReadOffsets | None = None
    refresh_s: float = 2.0
    positions: Offsets = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def record(self, sources: Iterable[KafkaCoordinates]) -> None:
        """Records at these coordinates are handled: positions move past them (never backwards)."""
        for source in sources:
            if source.offset + 1 > self.positions.get(source.partition, 0):
                self.positions[source.partition] = source.offset + 1
        self._changed.set()
        self._changed = asyncio.Event()  # waiters hold the one just set

    def short_of(self, watermark: Offsets) -> Offsets:
        """Per partition not reached yet: how many records are missing."""
        return {
            p: end - self.positions.get(p, 0)
            for p, end in watermark.items()
            if self.positions.get(p, 0) < end
        }

    async def wait_for(
        self, watermark: Offsets, timeout_s: float, clock: Callable[[], float] | None = None
    ) -> CatchUp:
        """Wait until every partition of `watermark` is reached, at most `timeout_s`. Never raises for
        the bound: the caller decides what a short wait means (and says so)."""
        now = clock or asyncio.get_running_loop().time
        started = now()
        deadline, refresh_at = started + timeout_s, started
        while short := self.short_of(watermark):
            if now() >= refresh_at:  # the broker is asked when a wait starts short, then every refresh_s
                await self._refresh_committed()
                refresh_at = now() + self.refresh_s
                if not (short := self.short_of(watermark)):
                    break
            left = deadline - now()
            if left <= 0:
                break
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.0, min(left, refresh_at - now())))
        return CatchUp(dict(watermark), short, now() - started)

    async def _refresh_committed(self) -> None:
        if self.committed is None:
            return
        try:
            committed = await self.committed()
        except Exception as exc:  # the broker is away: positions recorded in memory still count
            log.warning("could not read committed offsets: %s: %s", type(exc).__name__, exc)
            return
        for partition, offset in committed.items():
            if offset > self.positions.get(partition, 0):
                self.positions[partition] = offset
