"""The kit against the real broker: round trip, consumer groups, dead letters, failing handlers."""

from __future__ import annotations

import asyncio
import json
import uuid

from contracts.common import KafkaCoordinates
from contracts.events import TrainingRequested
from contracts.registry import encode_event
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from tests.support import create_topic, dead_letters_for, probe_settings, training_request, wait_until


def kit(bootstrap: str, service: str = "probe") -> Subscriptions:
    settings = probe_settings(bootstrap)
    broker = make_broker(settings)
    return Subscriptions(
        broker, EventPublisher(broker, service), service, max_attempts=settings.max_handler_attempts
    )


async def test_event_round_trip_through_a_faststream_subscriber(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    await create_topic(kafka_bootstrap, unique_topic)
    subs = kit(kafka_bootstrap)
    received: list[tuple[TrainingRequested, KafkaCoordinates]] = []

    @subs.on_event(unique_topic, TrainingRequested, group_id=f"g-{uuid.uuid4()}")
    async def handle(event: TrainingRequested, source: KafkaCoordinates) -> None:
        received.append((event, source))

    sent = training_request()
    async with subs.broker:
        await subs.broker.start()
        await subs.publisher.publish(sent, topic=unique_topic)
        await wait_until(lambda: len(received) == 1, what="the event")

    event, source = received[0]
    assert event == sent  # every envelope field and the typed payload survive the trip
    assert isinstance(event, TrainingRequested)
    assert source.topic == unique_topic and source.offset == 0


async def test_two_consumers_in_one_group_split_the_partitions(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    await create_topic(kafka_bootstrap, unique_topic, partitions=4)
    group = f"g-{uuid.uuid4()}"
    members = [kit(kafka_bootstrap, f"member-{i}") for i in range(2)]
    seen: dict[int, list[RawMessage]] = {0: [], 1: []}
    for index, member in enumerate(members):
        member.on_raw(unique_topic, group_id=group)(lambda raws, i=index: _append(seen[i], raws))
    async with members[0].broker, members[1].broker:
        await members[0].broker.start()
        await members[1].broker.start()
        # The group settles when the two assignments are disjoint and cover the 4 partitions.
        await wait_until(
            lambda: (
                not (members[0].assignments() & members[1].assignments())
                and len(members[0].assignments() | members[1].assignments()) == 4
                and all(m.assignments() for m in members)
            ),
            timeout_s=45,
            what="the group to settle",
        )
        assignments = [m.assignments() for m in members]
        producer = members[0].broker
        for i in range(200):
            await producer.publish(json.dumps({"i": i}).encode(), unique_topic, key=f"k{i}".encode())
        await wait_until(lambda: len(seen[0]) + len(seen[1]) >= 200, what="200 messages")

    assert len(assignments[0]) == len(assignments[1]) == 2  # round robin: an even split
    for i in (0, 1):
        assert seen[i], f"member {i} received nothing"
        assert {r.source.partition for r in seen[i]} <= {p for _, p in assignments[i]}
    values = sorted(json.loads(r.value or b"")["i"] for r in seen[0] + seen[1])
    assert values == list(range(200))  # nothing lost, nothing doubled


async def _append(target: list[RawMessage], raws: list[RawMessage]) -> None:
    target.extend(raws)


async def test_invalid_messages_are_dead_lettered_and_do_not_block_the_partition(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    await create_topic(kafka_bootstrap, unique_topic)
    subs = kit(kafka_bootstrap)
    handled: list[TrainingRequested] = []

    @subs.on_event(unique_topic, TrainingRequested, group_id=f"g-{uuid.uuid4()}")
    async def handle(event: TrainingRequested, source: KafkaCoordinates) -> None:
        handled.append(event)

    wrong_type = json.loads(encode_event(training_request()))
    wrong_type["payload"]["reason"] = "because"  # not one of the allowed reasons
    bad = [b"\xff\xfenot json", json.dumps(wrong_type).encode(), b"[1, 2]", b""]
    good = training_request(by="after-the-garbage")
    async with subs.broker:
        await subs.broker.start()
        for value in bad:
            await subs.broker.publish(value, unique_topic, key=b"secret-key")
        await subs.publisher.publish(good, topic=unique_topic)
        await wait_until(lambda: len(handled) == 1, what="the valid event behind the garbage")

    assert handled[0].event_id == good.event_id
    letters = sorted(
        await dead_letters_for(kafka_bootstrap, unique_topic, 4), key=lambda e: e.payload.source.offset
    )
    assert [e.payload.source.offset for e in letters] == [0, 1, 2, 3]
    assert [e.payload.reason.code for e in letters] == [
        "not_json",
        "schema_violation",
        "not_object",
        "not_json",
    ]
    assert letters[1].payload.reason.errors and letters[1].payload.reason.errors[0].field.endswith("reason")
    for letter in letters:
        assert letter.payload.consumer == "probe" and letter.payload.key_sha256 is not None
        assert "because" not in letter.model_dump_json()  # the offending value is not echoed


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    await create_topic(kafka_bootstrap, unique_topic)
    subs = kit(kafka_bootstrap)
    attempts: dict[str, int] = {}
    poison, fine = training_request(by="poison"), training_request(by="fine")

    @subs.on_event(unique_topic, TrainingRequested, group_id=f"g-{uuid.uuid4()}")
    async def handle(event: TrainingRequested, source: KafkaCoordinates) -> None:
        attempts[event.payload.requested_by] = attempts.get(event.payload.requested_by, 0) + 1
        if event.payload.requested_by == "poison":
            raise RuntimeError("downstream is broken")

    async with subs.broker:
        await subs.broker.start()
        await subs.publisher.publish(poison, topic=unique_topic)
        await subs.publisher.publish(fine, topic=unique_topic)
        await wait_until(lambda: attempts.get("fine") == 1, what="the message after the poison one")

    assert attempts["poison"] == 3
    [letter] = await dead_letters_for(kafka_bootstrap, unique_topic, 1)
    assert letter.payload.reason.code == "handler_failed"
    assert "RuntimeError" in letter.payload.reason.message
    await asyncio.sleep(0)


async def test_deeply_nested_json_is_dead_lettered_not_retried_forever(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    await create_topic(kafka_bootstrap, unique_topic)
    subs = kit(kafka_bootstrap)
    handled: list[TrainingRequested] = []

    @subs.on_event(unique_topic, TrainingRequested, group_id=f"g-{uuid.uuid4()}")
    async def handle(event: TrainingRequested, source: KafkaCoordinates) -> None:
        handled.append(event)

    nested = b"[" * 100_000 + b"]" * 100_000  # deeper than any JSON parser's recursion limit
    after = training_request(by="after-the-nesting")
    async with subs.broker:
        await subs.broker.start()
        await subs.broker.publish(nested, unique_topic)
        await subs.publisher.publish(after, topic=unique_topic)
        await wait_until(lambda: len(handled) == 1, what="the event after the nested one")
    [letter] = await dead_letters_for(kafka_bootstrap, unique_topic, 1)
    assert letter.payload.source.offset == 0 and letter.payload.reason.code == "not_json"


async def test_a_failing_batch_handler_dead_letters_every_record_of_the_batch(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    await create_topic(kafka_bootstrap, unique_topic)
    subs = kit(kafka_bootstrap)
    calls: list[int] = []
    sent = 20

    async def always_fails(raws: list[RawMessage]) -> None:
        calls.append(len(raws))
        raise RuntimeError("the store is down")

    async with subs.broker:
        await subs.broker.connect()
        for i in range(sent):  # all in the topic before the consumer starts, so they come as batches
            await subs.broker.publish(json.dumps({"i": i}).encode(), unique_topic)
    subs.on_raw(unique_topic, group_id=f"g-{uuid.uuid4()}", batch=True)(always_fails)
    async with subs.broker:
        await subs.broker.start()
        letters = await dead_letters_for(kafka_bootstrap, unique_topic, sent)
    assert sorted(letter.payload.source.offset for letter in letters) == list(range(sent))
    assert all(letter.payload.reason.code == "handler_failed" for letter in letters)
    assert max(calls) > 1  # it really was consumed in batches


async def test_one_poison_record_in_a_batch_is_dead_lettered_alone(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    """Today's defect: a handler failing on one record dead-lettered the whole fetched batch."""
    await create_topic(kafka_bootstrap, unique_topic)
    subs = kit(kafka_bootstrap)
    sent, poison_at = 40, 17
    handled: set[int] = set()
    sizes: list[int] = []

    async def fails_on_one(raws: list[RawMessage]) -> None:
        sizes.append(len(raws))
        values = [json.loads(r.value or b"{}")["i"] for r in raws]
        if poison_at in values:
            raise OverflowError("this one record breaks the store")
        handled.update(values)

    async with subs.broker:
        await subs.broker.connect()
        for i in range(sent):  # all in the topic before the consumer starts, so they come as batches
            await subs.broker.publish(json.dumps({"i": i}).encode(), unique_topic)
    subs.on_raw(unique_topic, group_id=f"g-{uuid.uuid4()}", batch=True)(fails_on_one)
    async with subs.broker:
        await subs.broker.start()
        await wait_until(lambda: len(handled) == sent - 1, what="every record but the poison one")
        [letter] = await dead_letters_for(kafka_bootstrap, unique_topic, 1)
    assert handled == set(range(sent)) - {poison_at} and max(sizes) > 1
    assert letter.payload.source.offset == poison_at and letter.payload.reason.code == "handler_failed"
    assert "OverflowError" in letter.payload.reason.message and "alone" in letter.payload.reason.message
    assert "breaks the store" not in letter.model_dump_json()  # the exception's text may quote values
