"""The kit's subscriptions on FastStream's in-memory broker: parsing, routing, dead letters."""

from __future__ import annotations

import hashlib
import json

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import TestKafkaBroker
from prometheus_client import REGISTRY

from contracts.common import FieldError, KafkaCoordinates
from contracts.events import DeadLettered, ModelPromoted, TrainingRequested
from contracts.registry import encode_event, parse_event
from contracts.samples import sample_events
from contracts.topics import DEADLETTERS, TRAINING_REQUESTED
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import MIXED_TOPICS, Delivery, RawMessage, Subscriptions
from servicekit.deadletters import DeadLetters, dead_letter_id
from servicekit.errors import ServiceError
from tests.support import probe_settings, training_request


def wired() -> tuple[Subscriptions, list[TrainingRequested], list[DeadLettered]]:
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe")
    handled: list[TrainingRequested] = []
    letters: list[DeadLettered] = []

    @subs.on_event(TRAINING_REQUESTED, TrainingRequested)
    async def handle(event: TrainingRequested, source: KafkaCoordinates) -> None:
        handled.append(event)

    @subs.on_raw(DEADLETTERS, group_id="letters")
    async def keep(raws: list[RawMessage]) -> None:
        letters.extend(parse_event(r.value or b"") for r in raws)  # type: ignore[misc]

    return subs, handled, letters


async def test_a_valid_event_reaches_its_handler_typed() -> None:
    subs, handled, letters = wired()
    event = training_request()
    async with TestKafkaBroker(subs.broker) as broker:
        await broker.publish(encode_event(event), TRAINING_REQUESTED)
    assert handled == [event] and not letters


async def test_garbage_is_dead_lettered_with_a_reason_and_digest() -> None:
    subs, handled, letters = wired()
    async with TestKafkaBroker(subs.broker) as broker:
        await broker.publish(b"\x00\x01 binary", TRAINING_REQUESTED, key=b"k")
        await broker.publish(json.dumps({"event_type": "TrainingRequested"}).encode(), TRAINING_REQUESTED)
    assert not handled
    assert [letter.payload.reason.code for letter in letters] == ["not_json", "schema_violation"]
    first = letters[0].payload
    assert first.raw_sha256 == hashlib.sha256(b"\x00\x01 binary").hexdigest() and first.raw_size == 9
    assert first.key_sha256 == hashlib.sha256(b"k").hexdigest() and first.consumer == "probe"


async def test_an_event_of_another_type_is_refused_on_this_topic() -> None:
    subs, handled, letters = wired()
    promoted = next(e for e in sample_events() if isinstance(e, ModelPromoted))
    async with TestKafkaBroker(subs.broker) as broker:
        await broker.publish(encode_event(promoted), TRAINING_REQUESTED)
    assert not handled
    assert letters[0].payload.reason.code == "unexpected_event_type"
    assert "ModelPromoted" in letters[0].payload.reason.message


async def test_publisher_keys_and_labels_events_per_contract() -> None:
    broker = make_broker(probe_settings("127.0.0.1:1"))
    seen: list[RawMessage] = []
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe")

    @subs.on_raw(TRAINING_REQUESTED)
    async def keep(raws: list[RawMessage]) -> None:
        seen.extend(raws)

    event = training_request(model="credit-risk")
    async with TestKafkaBroker(broker):
        await subs.publisher.publish(event)
    assert seen[0].key == b"credit-risk"
    assert parse_event(seen[0].value or b"") == event


async def test_a_typed_batch_is_decoded_once_and_garbage_is_dead_lettered_alone() -> None:
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe")
    batches: list[list[Delivery[TrainingRequested]]] = []
    letters: list[DeadLettered] = []

    @subs.on_batch(TRAINING_REQUESTED, TrainingRequested)
    async def handle(batch: list[Delivery[TrainingRequested]]) -> None:
        batches.append(batch)

    @subs.on_raw(DEADLETTERS, group_id="letters")
    async def keep(raws: list[RawMessage]) -> None:
        letters.extend(parse_event(r.value or b"") for r in raws)  # type: ignore[misc]

    event = training_request()
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(b"{half", TRAINING_REQUESTED)
        await test_broker.publish(encode_event(event), TRAINING_REQUESTED)
    assert [d.event for batch in batches for d in batch] == [event]
    assert isinstance(batches[0][0].event, TrainingRequested)
    assert batches[0][0].source.topic == TRAINING_REQUESTED
    assert [letter.payload.reason.code for letter in letters] == ["not_json"]


async def test_the_same_dead_letter_is_sent_once_and_carries_a_stable_id() -> None:
    sent: list[DeadLettered] = []

    class Publisher:
        async def publish(self, event: DeadLettered) -> None:
            sent.append(event)

    letters = DeadLetters(Publisher(), "probe")  # type: ignore[arg-type]
    raw = RawMessage(KafkaCoordinates(topic="t", partition=1, offset=7), None, b"x", 0)
    await letters.send(raw, "handler_failed", "ValueError", [])
    await letters.send(raw, "handler_failed", "ValueError", [])  # the batch handled again
    await letters.send(raw, "not_json", "other reason", [])
    assert [e.payload.reason.code for e in sent] == ["handler_failed", "not_json"]
    restarted = DeadLetters(Publisher(), "probe")  # a new process sends it again: same event id
    await restarted.send(raw, "handler_failed", "ValueError", [])
    assert sent[-1].event_id == sent[0].event_id == dead_letter_id("probe", raw.source, "handler_failed")
    assert sent[0].event_id != sent[1].event_id


async def test_a_service_error_of_one_record_is_its_dead_letter_reason() -> None:
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe", max_attempts=1)
    letters: list[DeadLettered] = []
    handled: list[str] = []

    class Implausible(ServiceError):
        status, code = 422, "implausible"

    @subs.on_batch(TRAINING_REQUESTED, TrainingRequested)
    async def handle(batch: list[Delivery[TrainingRequested]]) -> None:
        if any(d.event.payload.requested_by == "odd" for d in batch):
            field = FieldError(field="payload.requested_by", code="odd", message="not plausible")
            raise Implausible("an implausible request", [field])
        handled.extend(d.event.payload.requested_by for d in batch)

    @subs.on_raw(DEADLETTERS, group_id="letters")
    async def keep(raws: list[RawMessage]) -> None:
        letters.extend(parse_event(r.value or b"") for r in raws)  # type: ignore[misc]

    async with TestKafkaBroker(broker) as test_broker:
        for by in ("fine", "odd", "also-fine"):
            await test_broker.publish(encode_event(training_request(by=by)), TRAINING_REQUESTED)
    assert handled == ["fine", "also-fine"]
    [letter] = letters
    assert letter.payload.reason.code == "implausible"
    assert letter.payload.reason.message == "an implausible request"
    assert letter.payload.reason.errors[0].field == "payload.requested_by"


def raw_record(topic: str, partition: int, offset: int, value: bytes = b"{}") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic, partition=partition, offset=offset, timestamp=0, timestamp_type=0, key=None,
        value=value, checksum=None, serialized_key_size=-1, serialized_value_size=len(value), headers=(),
    )  # fmt: skip


async def test_on_raw_reads_several_topics_with_one_consumer_and_counts_each_topic() -> None:
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "multi"), "multi")
    batches: list[list[tuple[str, int, int]]] = []

    @subs.on_raw("t.a", "t.b", "t.a", group_id="g-multi", batch=True)
    async def keep(raws: list[RawMessage]) -> None:
        batches.append([(r.source.topic, r.source.partition, r.source.offset) for r in raws])

    [subscription] = subs.registered
    [subscriber] = broker.subscribers
    assert subscription.topics == ("t.a", "t.b") and subscription.group_id == "g-multi"
    assert subscriber.topic_names == ["t.a", "t.b"] and subscriber.group_id == "g-multi"

    def handled(topic: str) -> float:
        return (
            REGISTRY.get_sample_value(
                "mlops_events_consumed_total", {"service": "multi", "topic": topic, "outcome": "handled"}
            )
            or 0.0
        )

    mixed = REGISTRY.get_sample_value(
        "mlops_handler_seconds_count", {"service": "multi", "topic": MIXED_TOPICS}
    )
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(b"{}", "t.b")  # each topic reaches the one handler
        await subscriber.process_message(
            [raw_record("t.a", 0, 5), raw_record("t.b", 1, 2), raw_record("t.a", 1, 9)]
        )
    assert batches[-1] == [("t.a", 0, 5), ("t.b", 1, 2), ("t.a", 1, 9)] and batches[0][0][0] == "t.b"
    assert (handled("t.a"), handled("t.b")) == (2, 2)
    after = REGISTRY.get_sample_value(
        "mlops_handler_seconds_count", {"service": "multi", "topic": MIXED_TOPICS}
    )
    assert (after or 0) - (mixed or 0) == 1  # one observation for the mixed batch, under "(several)"


async def test_a_failing_mixed_batch_counts_its_deliveries_per_partition() -> None:
    """A redelivered multi-partition batch may come back with other partitions first: the count follows
    each partition's first record, so the batch is dead-lettered after `max_attempts`, not retried forever."""
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe", max_attempts=2)
    letters: list[DeadLettered] = []

    async def store_down(_: list[RawMessage]) -> None:
        raise OSError("the store is down")

    @subs.on_raw(DEADLETTERS, group_id="letters")
    async def keep(raws: list[RawMessage]) -> None:
        letters.extend(parse_event(r.value or b"") for r in raws)  # type: ignore[misc]

    def raw(topic: str, partition: int, offset: int) -> RawMessage:
        return RawMessage(KafkaCoordinates(topic=topic, partition=partition, offset=offset), None, b"{}", 0)

    async with TestKafkaBroker(broker):
        with pytest.raises(OSError):  # first delivery: nothing handled, redelivered
            await subs._run([raw("t.a", 0, 4), raw("t.b", 0, 7)], store_down, lambda r: r)
        assert not letters
        # Redelivered: t.c's record came first this time, t.b starts where it did before.
        await subs._run([raw("t.c", 0, 1), raw("t.b", 0, 7), raw("t.b", 0, 8)], store_down, lambda r: r)
    assert sorted(letter.payload.source.topic for letter in letters) == ["t.b", "t.b", "t.c"]
    assert not subs._attempts.get(("t.b", 0, 7)) and not subs._attempts.get(("t.c", 0, 1))
