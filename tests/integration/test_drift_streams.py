"""The drift service on the real broker reads clean records, predictions and labels with ONE consumer
group, the three streams interleaved (labels before their records here), and hostile input on any
of the three topics (bytes that are not JSON, an event cut short, an impossible date, an event of
another type, a prediction smuggled onto the labels topic, a label dated in the year 9999 that would
have expired every prediction waiting in the join) is dead-lettered alone, with its reason,
while every valid record, prediction and label around it is handled once."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import InvalidTimestampError

from contracts.events import LabelObserved, RecordCleaned
from contracts.registry import encode_event
from servicekit.broker import make_broker
from services.drift.app import create_app
from tests.integration.test_drift_service import Run, service
from tests.integration.test_redis_online_store import dead_letters_about
from tests.support import create_topic, probe_settings, wait_until
from tests.unit.test_drift_reports import trained
from tests.unit.test_drift_service import label, made, record


async def send_bytes(run: Run, topic: str, values: list[bytes]) -> None:
    broker = make_broker(probe_settings(run.bootstrap))
    async with broker:
        await broker.start()
        for value in values:
            await broker.publish(value, run.topics[topic])


def impossible_date(event: RecordCleaned | LabelObserved, date: bytes = b"2026-02-30T00:00:00") -> bytes:
    """The event with its event time on `date` (by default 30 February: a typo the contract refuses)."""
    body = encode_event(event)
    good = event.payload.event_time.isoformat().encode().replace(b"+00:00", b"")
    assert good in body
    return body.replace(good, date, 1)


async def groups_of(bootstrap: str, prefix: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {group for group, *_ in await admin.list_consumer_groups() if group.startswith(prefix)}
    finally:
        await admin.close()


async def test_one_group_reads_the_three_streams_and_bad_input_takes_nothing_with_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    run = Run(kafka_bootstrap, tmp_path)
    await run.create_topics()
    rng = random.Random(6)
    records = [record(i, False, rng) for i in range(300)]
    app = create_app(run.settings)
    drift = service(app)
    async with app.router.lifespan_context(app):
        await run.send([made(i) for i in range(300)], "predictions")
        await send_bytes(run, "predictions", [encode_event(trained("4", 0, 10))])  # not a prediction
        await run.send([label(i, "bad", i % 2 == 0) for i in range(100)], "labels")  # before their records
        cut_short = b'{"event_type": "LabelObserved", "pay'
        smuggled = encode_event(made(900, version="999"))  # a prediction on the labels topic
        from_the_future = impossible_date(label(950, "bad"), b"9999-12-31T00:00:00")
        await send_bytes(run, "labels", [b"not json at all", cut_short, smuggled, from_the_future])
        await run.send(records[:150], "clean")
        await send_bytes(run, "clean", [impossible_date(records[150])])
        await run.send(records[150:], "clean")
        await run.send([label(i, "good", True) for i in range(100, 300)], "labels")
        await wait_until(
            lambda: drift.watch.monitors["data:kind"].n == 300 and drift.watch.join.joined == 300,
            timeout_s=90,
            what="every record seen and every label joined",
        )
        watch = drift.watch
        assert watch.monitors["data:amount"].n == 300  # the misdated record is not among them
        assert watch.monitors["prediction:credit"].n == 300 and watch.monitors["concept:credit"].n == 300
        assert watch.join.stats()["pending_predictions"] == 0 and watch.versions == {"credit": "3"}
        group = run.settings.consumer_group
        assert await groups_of(kafka_bootstrap, group) == {
            group,  # the three streams
            f"{group}.{run.topics['trained']}",
            f"{group}.{run.topics['promoted']}",
        }
    letters = {}
    for topic in ("labels", "predictions", "clean"):
        found = await dead_letters_about(kafka_bootstrap, run.topics[topic])
        assert all(letter.payload.reason.message for letter in found)  # every letter says why
        letters[topic] = sorted(letter.payload.reason.code for letter in found)
    assert letters == {
        "labels": ["ahead_of_arrival", "not_json", "not_json", "unexpected_event_type"],
        "predictions": ["unexpected_event_type"],
        "clean": ["schema_violation"],
    }


async def test_the_broker_bounds_the_arrival_that_event_times_are_held_to(kafka_bootstrap: str) -> None:
    """servicekit/arrival.py trusts a record's Kafka timestamp: a producer sets it (create time), and
    Kafka 4 refuses one more than an hour ahead of the broker's clock (`log.message.timestamp.after.
    max.ms`), so a producer cannot carry a label from the future past it by stamping the record too."""
    topic = f"test.arrival.{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        now_ms = int(time.time() * 1000)
        await producer.send_and_wait(topic, b"{}", timestamp_ms=now_ms + 30 * 60_000)  # within the hour
        with pytest.raises(InvalidTimestampError):
            await producer.send_and_wait(topic, b"{}", timestamp_ms=now_ms + 2 * 3_600_000)
    finally:
        await producer.stop()
