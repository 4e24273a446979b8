"""Kafka subscriptions with the platform's delivery rules, so no service re-implements them:

- at-least-once: offsets are committed only after the handler returned (handlers are idempotent);
- a message that cannot be parsed or fails its contract is dead-lettered with the reason and
  acknowledged, so it never blocks its partition;
- a handler that keeps failing is retried `max_handler_attempts` times, then dead-lettered.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from contracts.common import FieldError, KafkaCoordinates, Rejection
from contracts.envelope import Event
from contracts.events import DeadLettered, DeadLetteredPayload
from contracts.registry import ContractError, parse_event
from servicekit.broker import MAX_REQUEST_BYTES, EventPublisher
from servicekit.logs import log_context
from servicekit.metrics import CONSUMER_LAG, DEAD_LETTERS, EVENTS_CONSUMED, HANDLER_SECONDS

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class RawMessage:
    """One Kafka record as it arrived: nothing parsed yet."""

    source: KafkaCoordinates
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass
class Subscription:
    """What a service consumes; the AsyncAPI export reads these to document payloads."""

    topic: str
    group_id: str
    event_types: tuple[type[Event], ...]
    batch: bool
    subscriber: Any = field(default=None, compare=False, repr=False)


@dataclass
class Subscriptions:
    broker: KafkaBroker
    publisher: EventPublisher
    service: str
    max_attempts: int = 3
    registered: list[Subscription] = field(default_factory=list)
    _attempts: dict[tuple[str, int, int], int] = field(default_factory=dict)
    _lag_labels: set[tuple[str, str, str, str]] = field(default_factory=set)

    def _subscriber(
        self,
        topic: str,
        group_id: str,
        batch: bool,
        description: str,
        max_records: int = 500,
        start: Literal["earliest", "latest"] = "earliest",
    ) -> Any:
        return self.broker.subscriber(
            topic,
            group_id=group_id,
            batch=batch,
            auto_offset_reset=start,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            # Handlers read the raw bytes and parse them with the contracts; FastStream's own JSON
            # decoding would run first and die outside our dead-letter path (e.g. RecursionError
            # on deeply nested JSON), retrying that message forever.
            decoder=_no_decode,
            max_partition_fetch_bytes=MAX_REQUEST_BYTES,
            max_records=max_records if batch else None,
            title=f"{self.service}:{topic}",
            description=description,
        )

    def on_event(
        self,
        topic: str,
        *event_types: type[E],
        group_id: str | None = None,
        start: Literal["earliest", "latest"] = "earliest",
    ) -> Callable[[Callable[[E, KafkaCoordinates], Awaitable[None]]], None]:
        """Subscribe a handler `(event, source) -> None` to contract events on `topic`. A new group
        starts at the `earliest` message (services: nothing is missed) or at the `latest` (observers
        that only care about what happens from now on)."""
        group = group_id or self.service
        names = ", ".join(t.__name__ for t in event_types)
        subscriber = self._subscriber(
            topic, group, batch=False, description=f"Consumes {names}.", start=start
        )
        self.registered.append(Subscription(topic, group, event_types, batch=False, subscriber=subscriber))

        def register(handler: Callable[[E, KafkaCoordinates], Awaitable[None]]) -> None:
            @subscriber
            async def consume(msg: KafkaMessage) -> None:
                raw = _raw_message(msg.raw_message)
                try:
                    event = parse_event(raw.value if raw.value is not None else b"")
                    if not isinstance(event, event_types):
                        raise ContractError(
                            "unexpected_event_type",
                            f"{event.event_type} is not accepted on {topic} (expects {names})",
                        )
                except ContractError as err:
                    await self.dead_letter(raw, err.code, str(err), err.errors)
                    return
                with log_context(event_id=str(event.event_id), event_type=event.event_type):
                    await self._run([raw], lambda: handler(event, raw.source))

        return register

    def on_raw(
        self,
        topic: str,
        *,
        group_id: str | None = None,
        batch: bool = False,
        max_records: int = 500,
        start: Literal["earliest", "latest"] = "earliest",
    ) -> Callable[[Callable[[list[RawMessage]], Awaitable[None]]], None]:
        """Subscribe a handler that takes raw records (for topics that carry no envelope, or for speed).
        The handler gets a list: one record, or a fetched batch of up to `max_records` when `batch=True`
        (bigger batches amortise a handler's per-call cost, e.g. a database commit)."""
        group = group_id or self.service
        subscriber = self._subscriber(
            topic,
            group,
            batch=batch,
            description="Consumes raw records.",
            max_records=max_records,
            start=start,
        )
        self.registered.append(Subscription(topic, group, (), batch=batch, subscriber=subscriber))

        def register(handler: Callable[[list[RawMessage]], Awaitable[None]]) -> None:
            @subscriber
            async def consume(msg: KafkaMessage) -> None:
                records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
                raws = [_raw_message(r) for r in records]
                await self._run(raws, lambda: handler(raws))

        return register

    def assignments(self) -> set[tuple[str, int]]:
        """Partitions currently assigned to this service's consumers (empty until a group settles)."""
        assigned: set[tuple[str, int]] = set()
        for subscription in self.registered:
            consumer = getattr(subscription.subscriber, "consumer", None)
            if consumer is not None:
                assigned |= {(tp.topic, tp.partition) for tp in consumer.assignment()}
        return assigned

    def all_assigned(self) -> bool:
        """True once every subscription holds partitions."""
        consumers = [getattr(s.subscriber, "consumer", None) for s in self.registered]
        return all(c is not None and c.assignment() for c in consumers)

    async def ready_for_new_messages(self, timeout_s: float = 30.0) -> None:
        """Wait until every subscription holds partitions AND knows its starting offsets. A group that
        starts at "latest" resolves "latest" lazily; a message published before that resolution would
        be skipped, so observers that must see what they publish next call this first."""
        deadline = time.monotonic() + timeout_s
        while not self.all_assigned():
            if time.monotonic() > deadline:
                raise TimeoutError("subscriptions got no partitions in time")
            await asyncio.sleep(0.05)
        for subscription in self.registered:
            consumer = subscription.subscriber.consumer
            for partition in consumer.assignment():
                await consumer.position(partition)  # resolves the reset policy now

    async def record_lag(self, timeout_s: float = 1.0) -> None:
        """Set `mlops_consumer_lag` for every partition assigned here, from what the consumers already
        know (the high watermark comes with each fetch response; the position is local once fetching
        started): no request to the broker. Partitions no longer assigned lose their series."""
        current: set[tuple[str, str, str, str]] = set()
        for subscription in self.registered:
            consumer = getattr(subscription.subscriber, "consumer", None)
            if consumer is None or not hasattr(consumer, "highwater"):
                continue  # not started, or an in-memory test broker
            for tp in list(consumer.assignment()):
                try:
                    highwater = consumer.highwater(tp)
                    if highwater is None:  # nothing fetched from it yet
                        continue
                    position = await asyncio.wait_for(consumer.position(tp), timeout_s)
                except Exception:  # revoked meanwhile, or the position is being reset: skip it this time
                    continue
                labels = (self.service, subscription.group_id, tp.topic, str(tp.partition))
                CONSUMER_LAG.labels(*labels).set(max(highwater - position, 0))
                current.add(labels)
        for labels in self._lag_labels - current:
            CONSUMER_LAG.remove(*labels)
        self._lag_labels = current

    async def _run(self, raws: list[RawMessage], call: Callable[[], Awaitable[None]]) -> None:
        """Run a handler over one record or a batch. Attempts are counted by the first record (a
        retried batch starts at the same offset); when they run out, EVERY record of the batch is
        dead-lettered, so committing the batch loses none silently."""
        first, count = raws[0], len(raws)
        topic, coordinates = (
            first.source.topic,
            (first.source.topic, first.source.partition, first.source.offset),
        )
        started = time.perf_counter()
        try:
            await call()
        except Exception as exc:
            attempt = self._attempts.get(coordinates, 0) + 1
            if attempt < self.max_attempts:
                self._attempts[coordinates] = attempt
                log.warning("handler failed (attempt %d/%d), will retry: %r", attempt, self.max_attempts, exc)
                EVENTS_CONSUMED.labels(self.service, topic, "retried").inc(count)
                await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
                raise  # NACK: the consumer seeks back and the message is delivered again
            self._attempts.pop(coordinates, None)
            log.exception("handler failed %d times; dead-lettering %d record(s)", attempt, count)
            for raw in raws:
                await self.dead_letter(
                    raw, "handler_failed", f"{type(exc).__name__} after {attempt} attempts", []
                )
            return
        self._attempts.pop(coordinates, None)
        HANDLER_SECONDS.labels(self.service, topic).observe(time.perf_counter() - started)
        EVENTS_CONSUMED.labels(self.service, topic, "handled").inc(count)

    async def dead_letter(self, raw: RawMessage, code: str, message: str, errors: list[FieldError]) -> None:
        """Publish (acks=all) before the offset is committed, so a dead letter is never lost."""
        value = raw.value or b""
        event = DeadLettered.create(
            DeadLetteredPayload(
                source=raw.source,
                consumer=self.service,
                reason=Rejection(code=code, message=message, errors=errors),
                raw_sha256=hashlib.sha256(value).hexdigest(),
                raw_size=len(value),
                key_sha256=hashlib.sha256(raw.key).hexdigest() if raw.key is not None else None,
            ),
            producer=self.service,
        )
        await self.publisher.publish(event)
        DEAD_LETTERS.labels(self.service, raw.source.topic, code).inc()
        EVENTS_CONSUMED.labels(self.service, raw.source.topic, "dead_lettered").inc()
        log.warning("dead-lettered %s: %s", raw.source.model_dump(), code)


async def _no_decode(message: Any, original: Any) -> None:
    return None


def _raw_message(record: Any) -> RawMessage:
    return RawMessage(
        source=KafkaCoordinates(topic=record.topic, partition=record.partition, offset=record.offset),
        key=record.key,
        value=record.value,
        timestamp_ms=record.timestamp,
    )
