"""Kafka as verify reads it: the published checkpoints, each partition's bounds, the audit consumer
groups' committed offsets, and the records at given offsets. A blocking facade (verify runs in the
CLI and in a route's worker thread) over aiokafka, on an event loop of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaError

from contracts.events import AuditCheckpointed
from contracts.registry import ContractError, parse_event
from servicekit.broker import MAX_REQUEST_BYTES
from services.audit.domain.anchors import LogRecord, PublishedCheckpoint
from services.audit.errors import AuditError

COORDINATOR_ATTEMPTS = 10


class KafkaUnavailable(AuditError):
    """Kafka did not answer, so the anchors outside the database cannot be read."""

    status = 503


class KafkaLog:
    """Use as a context manager: `with KafkaLog(bootstrap) as log: ...`."""

    def __init__(self, bootstrap: str | list[str], timeout_s: float = 60.0, **client_options: Any) -> None:
        """`client_options`: aiokafka's security arguments (servicekit.watermark.security_options)."""
        self.bootstrap, self.timeout_s, self.options = bootstrap, timeout_s, client_options
        self._runner = asyncio.Runner()
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    def __enter__(self) -> KafkaLog:
        try:
            self._admin, self._consumer = self._run(self._open())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        try:
            self._run(self._close())
        except AuditError:
            pass  # closing a connection that never opened
        finally:
            self._runner.close()

    async def _open(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        ms = int(self.timeout_s * 1000)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=ms, **self.options)
        await admin.start()
        self._admin = admin
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            request_timeout_ms=ms,
            max_partition_fetch_bytes=MAX_REQUEST_BYTES,
            # A fetch waits at most this long for data on the shared connection: with the default
            # 500 ms every offsets query queued behind an idle fetch waited that long (measured: 1.4 s
            # per topic's bounds, 0.5 s per partition read, on 20 topics).
            fetch_max_wait_ms=20,
            **self.options,
        )
        await consumer.start()
        return admin, consumer

    async def _close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    def _run(self, coroutine: Any) -> Any:
        try:
            return self._runner.run(asyncio.wait_for(coroutine, self.timeout_s))
        except (KafkaError, OSError, TimeoutError) as err:
            raise KafkaUnavailable(f"Kafka at {self.bootstrap} did not answer: {err!r}") from err

    # -- the port verify uses ------------------------------------------------------------------
    def bounds(self, topic: str) -> dict[int, tuple[int, int]]:
        """Partition -> (first offset still held, next offset); empty when the topic does not exist."""
        return dict(self._run(self._bounds(topic)))

    async def _bounds(self, topic: str) -> dict[int, tuple[int, int]]:
        assert self._admin is not None and self._consumer is not None
        described = await self._admin.describe_topics([topic])
        found = [t for t in described if t["topic"] == topic and not t["error_code"]]
        numbers = sorted(p["partition"] for t in found for p in t["partitions"])
        if not numbers:
            return {}
        partitions = [TopicPartition(topic, n) for n in numbers]
        starts = await self._consumer.beginning_offsets(partitions)
        ends = await self._consumer.end_offsets(partitions)
        return {tp.partition: (starts[tp], ends[tp]) for tp in partitions}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Partition -> offset `group` committed on `topic` (empty for a group that never committed)."""
        return dict(self._run(self._committed(group, topic)))

    async def _committed(self, group: str, topic: str) -> dict[int, int]:
        assert self._admin is not None
        for attempt in range(COORDINATOR_ATTEMPTS):
            try:
                offsets = await self._admin.list_consumer_group_offsets(group)
                break
            except GroupCoordinatorNotAvailableError:  # a young cluster is still electing it
                if attempt == COORDINATOR_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5)
        return {tp.partition: m.offset for tp, m in offsets.items() if tp.topic == topic and m.offset >= 0}

    def records(self, topic: str, partition: int, start: int, stop: int) -> Iterator[LogRecord]:
        """Records at offsets start..stop-1 that the log holds, in order."""
        if start >= stop:
            return
        tp = TopicPartition(topic, partition)
        consumer = self._consumer
        assert consumer is not None
        self._run(self._assign([tp], start))
        try:
            idle_since = time.monotonic()
            while self._run(consumer.position(tp)) < stop:
                batch = self._run(consumer.getmany(tp, timeout_ms=500, max_records=5000)).get(tp, [])
                if not batch:
                    if time.monotonic() - idle_since > self.timeout_s:
                        raise KafkaUnavailable(f"no records from {topic}:{partition} below offset {stop}")
                    continue
                idle_since = time.monotonic()
                for record in batch:
                    if record.offset >= stop:
                        return
                    yield LogRecord(record.offset, record.key, record.value)
        finally:
            self._run(self._assign([], 0))  # no fetch left running in the background

    async def _assign(self, partitions: list[TopicPartition], start: int) -> None:
        assert self._consumer is not None  # aiokafka makes futures here: it needs the running loop
        self._consumer.assign(partitions)
        for tp in partitions:
            self._consumer.seek(tp, start)

    def checkpoints(self, topic: str) -> list[PublishedCheckpoint]:
        """Every AuditCheckpointed on `topic`, from the start of each partition to its end."""
        found: list[PublishedCheckpoint] = []
        for partition, (start, end) in self.bounds(topic).items():
            for record in self.records(topic, partition, start, end):
                try:
                    event = parse_event(record.value or b"")
                except ContractError:
                    continue  # anything else on the topic is not a checkpoint
                if isinstance(event, AuditCheckpointed):
                    found.append(PublishedCheckpoint(event.payload, f"{topic}:{partition}:{record.offset}"))
        return found
