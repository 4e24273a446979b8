"""servicekit/outbox.py: an event is queued with the state change that made it, published in order,
marked sent once acknowledged; a failing publish keeps it (and what follows) for the next flush; the
same id is never queued twice; an unsent event may be withdrawn, a sent one not."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from contracts.envelope import Event
from contracts.events import LabelObserved, LabelObservedPayload
from servicekit.outbox import SqliteOutbox
from servicekit.sqlite import SqliteDatabase


def label(entity: str) -> LabelObserved:
    payload = LabelObservedPayload(
        dataset="d", entity_id=entity, label="good", event_time="2026-01-01T00:00:00Z"
    )
    return LabelObserved.create(payload, "test")


class Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail_on: str | None = None

    async def publish(self, event: Event[Any], topic: str) -> None:
        entity = event.payload.entity_id
        if entity == self.fail_on:
            raise ConnectionError("broker away")
        self.sent.append((entity, topic))


def test_events_commit_with_the_state_and_are_sent_in_order_once(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "state.sqlite", ["CREATE TABLE things (name TEXT)"])
    bus = Bus()
    outbox = SqliteOutbox(db, bus.publish)
    a, b, c = label("a"), label("b"), label("c")
    with outbox.transaction() as conn:
        conn.execute("INSERT INTO things VALUES ('x')")
        assert outbox.add(conn, a) and outbox.add(conn, b, "other.topic") and not outbox.add(conn, a)
    with pytest.raises(RuntimeError), outbox.transaction() as conn:
        outbox.add(conn, c)
        raise RuntimeError("the state change failed")
    assert outbox.pending() == 2  # c went with its rolled-back transaction
    bus.fail_on = "b"
    with pytest.raises(ConnectionError):
        asyncio.run(outbox.flush())
    assert (
        bus.sent == [("a", "labels.observed")] and outbox.pending() == 1 and outbox.was_sent(str(a.event_id))
    )
    bus.fail_on = None
    assert asyncio.run(outbox.flush()) == 1 and asyncio.run(outbox.flush()) == 0
    assert bus.sent == [("a", "labels.observed"), ("b", "other.topic")]
    with outbox.transaction() as conn:
        assert not outbox.add(conn, a)  # sent already: never queued again


def test_an_unsent_event_can_be_withdrawn_a_sent_one_cannot(tmp_path: Path) -> None:
    bus = Bus()
    outbox = SqliteOutbox(SqliteDatabase(None), bus.publish)
    a, b = label("a"), label("b")
    with outbox.transaction() as conn:
        outbox.add(conn, a)
    asyncio.run(outbox.flush())
    with outbox.transaction() as conn:
        outbox.add(conn, b)
        assert outbox.discard(conn, str(b.event_id)) and not outbox.discard(conn, str(a.event_id))
    assert asyncio.run(outbox.flush()) == 0 and bus.sent == [("a", "labels.observed")]


def test_sent_events_are_pruned_beyond_what_is_kept(tmp_path: Path) -> None:
    bus = Bus()
    outbox = SqliteOutbox(SqliteDatabase(None), bus.publish, keep_sent=2)
    for name in "abcde":
        with outbox.transaction() as conn:
            outbox.add(conn, label(name))
    asyncio.run(outbox.flush())
    with outbox.db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2


def test_concurrent_flushes_publish_each_event_once_and_one_being_published_cannot_be_withdrawn() -> None:
    gate = asyncio.Event()
    sent: list[str] = []

    async def slow_publish(event: Event[Any], topic: str) -> None:
        await gate.wait()  # Kafka takes its time: a client's label (discard) and other flushes come
        sent.append(str(event.event_id))

    outbox = SqliteOutbox(SqliteDatabase(None), slow_publish)
    first, second = label("e-1"), label("e-2")
    with outbox.transaction() as conn:
        outbox.add(conn, first)
        outbox.add(conn, second)

    async def scenario() -> tuple[list[int], bool, bool]:
        flushes = [asyncio.create_task(outbox.flush()) for _ in range(3)]
        await asyncio.sleep(0.01)  # the first flush is publishing e-1; the others wait for it
        with outbox.transaction() as conn:
            in_flight = outbox.discard(conn, str(first.event_id))
            queued = outbox.discard(conn, str(second.event_id))
        gate.set()
        return list(await asyncio.gather(*flushes)), in_flight, queued

    counts, withdrew_in_flight, withdrew_queued = asyncio.run(scenario())
    assert sent == [str(first.event_id)] and sum(counts) == 1
    assert not withdrew_in_flight and withdrew_queued  # e-1 was on its way; e-2 was still only queued
    assert outbox.was_sent(str(first.event_id)) and outbox.pending() == 0
