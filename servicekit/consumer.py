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
from typing import Any, TypeVar

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from contracts.common import FieldError, KafkaCoordinates, Rejection
from contracts.envelope import Event
from contracts.events import DeadLettered, DeadLetteredPayload
from contracts.registry import ContractError, parse_event
from servicekit.broker import MAX_REQUEST_BYTES, EventPublisher
from servicekit.logs import log_context
from servicekit.metrics import DEAD_LETTERS, EVENTS_CONSUMED, HANDLER_SECONDS

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

    def _subscriber(self, topic: str, group_id: str, batch: bool, description: str) -> Any:
        return self.broker.subscriber(
            topic,
            group_id=group_id,
            batch=batch,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_partition_fetch_bytes=MAX_REQUEST_BYTES,
            max_records=500 if batch else None,
            title=f"{self.service}:{topic}",
            description=description,
        )

    def on_event(
        self, topic: str, *event_types: type[E], group_id: str | None = None
    ) -> Callable[[Callable[[E, KafkaCoordinates], Awaitable[None]]], None]:
        """Subscribe a handler `(event, source) -> None` to contract events on `topic`."""
        group = group_id or self.service
        names = ", ".join(t.__name__ for t in event_types)
        subscriber = self._subscriber(topic, group, batch=False, description=f"Consumes {names}.")
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
                    await self._run(raw, lambda: handler(event, raw.source))

        return register

    def on_raw(
        self, topic: str, *, group_id: str | None = None, batch: bool = False
    ) -> Callable[[Callable[[list[RawMessage]], Awaitable[None]]], None]:
        """Subscribe a handler that takes raw records (for topics that carry no envelope, or for speed).
        The handler gets a list: one record, or a whole fetched batch when `batch=True`."""
        group = group_id or self.service
        subscriber = self._subscriber(topic, group, batch=batch, description="Consumes raw records.")
        self.registered.append(Subscription(topic, group, (), batch=batch, subscriber=subscriber))

        def register(handler: Callable[[list[RawMessage]], Awaitable[None]]) -> None:
            @subscriber
            async def consume(msg: KafkaMessage) -> None:
                records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
                raws = [_raw_message(r) for r in records]
                await self._run(raws[0], lambda: handler(raws), count=len(raws))

        return register

    def assignments(self) -> set[tuple[str, int]]:
        """Partitions currently assigned to this service's consumers (empty until a group settles)."""
        assigned: set[tuple[str, int]] = set()
        for subscription in self.registered:
            consumer = getattr(subscription.subscriber, "consumer", None)
            if consumer is not None:
                assigned |= {(tp.topic, tp.partition) for tp in consumer.assignment()}
        return assigned

    async def _run(self, raw: RawMessage, call: Callable[[], Awaitable[None]], count: int = 1) -> None:
        topic, coordinates = raw.source.topic, (raw.source.topic, raw.source.partition, raw.source.offset)
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
            log.exception("handler failed %d times; dead-lettering", attempt)
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


def _raw_message(record: Any) -> RawMessage:
    return RawMessage(
        source=KafkaCoordinates(topic=record.topic, partition=record.partition, offset=record.offset),
        key=record.key,
        value=record.value,
        timestamp_ms=record.timestamp,
    )
