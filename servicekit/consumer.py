"""Kafka subscriptions with the platform's delivery rules, so no service re-implements them:

- at-least-once: offsets are committed once per batch, only after the handler returned (handlers
  are idempotent, and publish what they must before returning: the outbox rule);
- a message that cannot be parsed or fails its contract is dead-lettered alone with the reason and
  acknowledged, so it never blocks its partition;
- one bad record never takes its neighbours with it: a failing batch is split at once and its
  failures isolated record by record (servicekit/isolation.py); only the records that fail alone
  are dead-lettered, each with its reason;
- a dependency that does not answer (a database, the broker) is waited out, the batch whole, for as
  long as it takes, without dead-lettering anything (servicekit/outages.py);
- a batch in which nothing succeeds for another reason is redelivered `max_handler_attempts` times
  before its records are dead-lettered.

`on_batch` is the typed batch path: each record is decoded once into its contract event, and the
handler gets the decoded batch. `on_event` (one event per call) and `on_raw` (undecoded records)
remain for observers and for topics that carry no envelope. `on_raw` may take several topics: one
consumer (one group, one fetch loop, one commit per batch) then reads them all, and a batch may mix
records of several topics and partitions, each record carrying its own coordinates. The FastStream
subscriber each one is made with, and `Subscription`, are servicekit/subscribers.py's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts.common import FieldError, KafkaCoordinates
from contracts.envelope import Event
from contracts.registry import ContractError
from servicekit.broker import EventPublisher
from servicekit.deadletters import DeadLetters, RawMessage, failure_reason
from servicekit.decoding import decode_event
from servicekit.errors import ServiceError
from servicekit.fetch_pace import FetchPace
from servicekit.isolation import ALONE_ATTEMPTS, Isolation, StoresWork, handle_isolating
from servicekit.logs import log_context
from servicekit.metrics import EVENTS_CONSUMED, HANDLER_SECONDS
from servicekit.outages import Outages, halves_probe, unavailable_dependency
from servicekit.partitions import PartitionsView
from servicekit.replay import keep_in_window
from servicekit.subscribers import BATCH_WAIT_MS, Subscription, kafka_subscriber, raw_message, records_of

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
T = TypeVar("T")

MIXED_TOPICS = "(several)"
"""The `topic` label of a handled batch that held records of several topics (`mlops_handler_seconds`)."""

__all__ = ["Delivery", "RawMessage", "Subscription", "Subscriptions"]


@dataclass(frozen=True)
class Delivery(Generic[E]):
    """One record of a typed batch: the contract event, decoded once, and the record it came from."""

    event: E
    raw: RawMessage

    @property
    def source(self) -> KafkaCoordinates:
        return self.raw.source


@dataclass
class Subscriptions(PartitionsView):
    broker: KafkaBroker
    publisher: EventPublisher
    service: str
    max_attempts: int = 3
    registered: list[Subscription] = field(default_factory=list)
    _attempts: dict[tuple[str, int, int], int] = field(default_factory=dict)
    _proofs: StoresWork = field(default_factory=StoresWork)
    _lag_labels: set[tuple[str, str, str, str]] = field(default_factory=set)
    _letters: DeadLetters | None = None
    _outages: Outages | None = None

    @property
    def outages(self) -> Outages:
        """Dependencies its consumers are waiting for right now (servicekit/outages.py)."""
        if self._outages is None:
            self._outages = Outages(self.service)
        return self._outages

    @property
    def letters(self) -> DeadLetters:
        if self._letters is None:
            self._letters = DeadLetters(self.publisher, self.service)
        return self._letters

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
        subscriber = kafka_subscriber(
            self.broker, self.service, (topic,), group, batch=False, description=f"Consumes {names}.",
            start=start,
        )  # fmt: skip
        self.registered.append(Subscription((topic,), group, event_types, batch=False, subscriber=subscriber))

        def register(handler: Callable[[E, KafkaCoordinates], Awaitable[None]]) -> None:
            @subscriber
            async def consume(msg: KafkaMessage) -> None:
                raw = raw_message(msg.raw_message)
                delivery = await self._decode(raw, event_types, topic)
                if delivery is None:
                    return
                event = delivery.event

                async def handle(_: list[RawMessage]) -> None:
                    await handler(event, raw.source)

                with log_context(event_id=str(event.event_id), event_type=event.event_type):
                    await self._run([raw], handle, lambda r: r)

        return register

    def on_raw(
        self,
        *topics: str,
        group_id: str | None = None,
        batch: bool = False,
        max_records: int = 500,
        start: Literal["earliest", "latest"] = "earliest",
    ) -> Callable[[Callable[[list[RawMessage]], Awaitable[None]]], None]:
        """Subscribe a handler that takes raw records (for topics that carry no envelope, or for speed).
        The handler gets a list: one record, or a fetched batch of up to `max_records` when `batch=True`
        (bigger batches amortise a handler's per-call cost, e.g. a database commit).

        Several topics are read by ONE consumer in one group: one fetch loop, one heartbeat, one commit
        per batch for all of them, and a batch may mix topics (`raw.source.topic` says each record's).
        The batch is committed, or rewound partition by partition, as a whole."""
        if not topics:
            raise ValueError("on_raw needs at least one topic")
        topics = tuple(dict.fromkeys(topics))
        group = group_id or self.service
        subscriber = kafka_subscriber(
            self.broker, self.service, topics, group, batch=batch, description="Consumes raw records.",
            max_records=max_records, start=start,
        )  # fmt: skip
        pace = FetchPace(subscriber, BATCH_WAIT_MS) if batch else None
        self.registered.append(Subscription(topics, group, (), batch, subscriber, pace))

        def register(handler: Callable[[list[RawMessage]], Awaitable[None]]) -> None:
            @subscriber
            async def consume(msg: KafkaMessage) -> None:
                if pace is not None:
                    pace.busy()
                records = records_of(msg.raw_message)
                raws = [raw_message(r) for r in records]
                await self._run(raws, handler, lambda r: r)

        return register

    def on_batch(
        self,
        topic: str,
        *event_types: type[E],
        group_id: str | None = None,
        max_records: int = 500,
        start: Literal["earliest", "latest"] = "earliest",
    ) -> Callable[[Callable[[list[Delivery[E]]], Awaitable[None]]], None]:
        """Subscribe a batch handler `(deliveries) -> None` to contract events on `topic`: up to
        `max_records` records per call, each decoded once; what does not decode is dead-lettered
        alone before the handler runs, and the handler's failures are isolated per record."""
        group = group_id or self.service
        names = ", ".join(t.__name__ for t in event_types)
        subscriber = kafka_subscriber(
            self.broker,
            self.service,
            (topic,),
            group,
            batch=True,
            description=f"Consumes {names}.",
            max_records=max_records,
            start=start,
        )
        pace = FetchPace(subscriber, BATCH_WAIT_MS)
        self.registered.append(Subscription((topic,), group, event_types, True, subscriber, pace))

        def register(handler: Callable[[list[Delivery[E]]], Awaitable[None]]) -> None:
            @subscriber
            async def consume(msg: KafkaMessage) -> None:
                pace.busy()
                records = records_of(msg.raw_message)
                decoded = [await self._decode(raw_message(r), event_types, topic) for r in records]
                deliveries = [d for d in decoded if d is not None]
                await self._run(deliveries, handler, lambda d: d.raw)

        return register

    async def _decode(
        self, raw: RawMessage, event_types: tuple[type[E], ...], topic: str
    ) -> Delivery[E] | None:
        """The record's contract event, or None once it is dead-lettered with the contract's reason."""
        try:
            event = decode_event(raw.value if raw.value is not None else b"")
            if not isinstance(event, event_types):
                expected = ", ".join(t.__name__ for t in event_types)
                raise ContractError(
                    "unexpected_event_type",
                    f"{event.event_type} is not accepted on {topic} (expects {expected})",
                )
        except ContractError as err:
            await self.dead_letter(raw, err.code, str(err), err.errors)
            return None
        return Delivery(event, raw)

    async def _run(
        self,
        items: list[T],
        handler: Callable[[list[T]], Awaitable[None]],
        raw_of: Callable[[T], RawMessage],
    ) -> None:
        """Handle a batch with per-record isolation (see the module docstring). Raising NACKs the batch:
        the consumer seeks each of its partitions back to its first offset there and delivers again."""
        items = keep_in_window(self.broker, items, raw_of)  # all of them, unless this is a replay
        if not items:
            return
        sources = [raw_of(item).source for item in items]
        # A redelivered batch need not hold the same partitions (a multi-partition fetch returns what
        # is ready), but every partition it shares with the failed one starts at the same record: the
        # attempts are counted on each partition's first record, the batch's delivery is the highest.
        firsts: dict[tuple[str, int], int] = {}
        for source in sources:
            firsts.setdefault((source.topic, source.partition), source.offset)
        coordinates = [(topic, partition, offset) for (topic, partition), offset in firsts.items()]
        topics = Counter(source.topic for source in sources)
        started, tried = time.perf_counter(), self.max_attempts
        # Whole first, waiting out any dependency that is down: an outage is no record's fault.
        if await self.outages.wait_out(lambda: handler(items), halves_probe(items, handler)):
            result: Isolation[T] = Isolation(handled=items)
            self._proofs.record(topics)
        else:
            proven = self._proofs.take(topics)  # records of its topics went through lately
            alone = min(ALONE_ATTEMPTS, self.max_attempts)  # a service that allows 1 gets no retry
            attempts = max(self.max_attempts - 1, 1)
            result = await handle_isolating(
                items, handler, attempts=attempts, alone_attempts=alone, proven=proven
            )
            tried = alone + 1 if proven else self.max_attempts  # a lone record's calls
            self._proofs.record(raw_of(item).source.topic for item in result.handled)
        outage = next((exc for _, exc in result.poison if unavailable_dependency(exc)), None)
        if outage is not None and not result.handled:
            # A dependency went down while the batch was being isolated (nothing got through): deliver
            # it again (NACK) and wait the outage out then; nothing is dead-lettered for it.
            raise outage
        if result.poison and not result.handled and len(items) > 1:
            delivery = max(self._attempts.get(c, 0) for c in coordinates) + 1
            if delivery < self.max_attempts:
                self._attempts.update(dict.fromkeys(coordinates, delivery))
                log.warning("no record of a batch of %d could be handled; redelivering it", len(items))
                for topic, count in topics.items():
                    EVENTS_CONSUMED.labels(self.service, topic, "retried").inc(count)
                await asyncio.sleep(min(0.2 * 2**delivery, 5.0))
                raise result.poison[0][1]
        for c in coordinates:
            self._attempts.pop(c, None)
        for item, exc in result.poison:
            await self._dead_letter_failure(raw_of(item), exc, len(items), tried)
        label = next(iter(topics)) if len(topics) == 1 else MIXED_TOPICS
        HANDLER_SECONDS.labels(self.service, label).observe(time.perf_counter() - started)
        for topic, count in Counter(raw_of(item).source.topic for item in result.handled).items():
            EVENTS_CONSUMED.labels(self.service, topic, "handled").inc(count)

    async def _dead_letter_failure(
        self, raw: RawMessage, exc: Exception, batch_size: int, tried: int
    ) -> None:
        """A service's own error is the record's reason (its code, message and field errors); any
        other exception is `handler_failed`, named by its type only."""
        if isinstance(exc, ServiceError):
            errors = [e for e in exc.errors if isinstance(e, FieldError)]
            await self.dead_letter(raw, exc.code, exc.message, errors)
            return
        log.error("handler failed on %s alone: %r", raw.source.model_dump(), exc)
        await self.dead_letter(raw, "handler_failed", failure_reason(exc, tried, batch_size), [])

    async def dead_letter(self, raw: RawMessage, code: str, message: str, errors: list[FieldError]) -> None:
        """Publish (acks=all) before the offset is committed, so a dead letter is never lost."""
        await self.letters.send(raw, code, message, errors)

    async def refuse(self, raw: RawMessage, err: ContractError) -> None:
        """Dead-letter a record a handler refuses as a contract error, with its code and reason."""
        await self.dead_letter(raw, err.code, err.message, err.errors)
