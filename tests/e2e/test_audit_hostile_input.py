"""The audit service as its own process, against the real Kafka, fed what a careless or hostile
producer sends between two good events: an event that escapes a lone surrogate ("\\ud800" is valid
JSON, but no Unicode text) and names a data subject, and one whose schema_version no INTEGER column
holds. Each is recorded as undecodable at once and its neighbours are appended; before, each failed its
whole batch on every retry, about eight minutes of backoff, stalling the trail, and was then
dead-lettered, never chained."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import httpx

from contracts.registry import encode_event
from infra.bus_access import kafka_options
from tests.e2e.test_audit_service import _ready, _verify, count, setup, wait_for  # noqa: F401 (fixture)
from tests.unit.test_audit_erasure import OTHER, SUBJECT, subject_events


async def send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:  # one partition, so they keep their order
            await producer.send_and_wait(topic, value, key=b"same", partition=0)
    finally:
        await producer.stop()


def test_hostile_events_are_recorded_undecodable_and_the_trail_goes_on(
    kafka_bootstrap: str,
    setup: dict[str, object],  # noqa: F811
) -> None:
    db, topic = Path(str(setup["db"])), str(setup["topic"])
    setup["start"]()  # type: ignore[operator]
    url, headers = f"http://127.0.0.1:{setup['port']}", {"X-API-Key": str(setup["key"])}
    wait_for(lambda: _ready(url), "the service to be ready")
    envelope = json.loads(encode_event(subject_events(SUBJECT)[0]))
    hostile = json.dumps(envelope).replace('"applicant": "', '"applicant": "\\ud800 ').encode()
    assert b"\\ud800" in hostile
    too_new = json.dumps({**json.loads(encode_event(subject_events(OTHER)[1])), "schema_version": 2**40})
    good = [encode_event(subject_events(OTHER)[0]), encode_event(subject_events(OTHER)[3])]
    asyncio.run(send(kafka_bootstrap, topic, [good[0], hostile, too_new.encode(), good[1]]))

    wait_for(lambda: count(db, topic) == 4, "all four rows, the hostile ones among them", timeout_s=60)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            'SELECT "offset", kind, note, body FROM audit_events WHERE topic = ? ORDER BY "offset"', (topic,)
        ).fetchall()
    assert [(kind, note) for _, kind, note, _ in rows] == [
        ("event", None), ("undecodable", "not_unicode"), ("undecodable", "not_envelope"), ("event", None)
    ]  # fmt: skip
    assert rows[1][3] is None and rows[2][3] is None  # only coordinates, digests and the reason
    assert _verify(url, headers)["intact"] is True
    events = httpx.get(f"{url}/events", params={"topic": topic}, headers=headers, timeout=30).json()
    assert [e["kind"] for e in events["items"]] == ["event", "undecodable", "undecodable", "event"]
