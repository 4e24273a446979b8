"""A bad record alone in its batch (a quiet topic) has no neighbours to compare it with. The kit takes
the topic's records handled within the last minute as the proof that the stores work, once per
proof: a store failing in a way the kit does not know as an outage costs one dead letter at most,
then the records wait, as every batch in which nothing goes through does."""

from __future__ import annotations

import sqlalchemy.exc
from faststream.kafka import TestKafkaBroker

from contracts.common import KafkaCoordinates
from contracts.events import DeadLettered
from contracts.registry import parse_event
from contracts.topics import DEADLETTERS
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from tests.support import probe_settings


def _raw(offset: int, topic: str = "t.quiet") -> RawMessage:
    return RawMessage(KafkaCoordinates(topic=topic, partition=0, offset=offset), None, b"{}", 0)


class Store:
    """Refuses the offsets in `bad`, and everything while `broken` (an error that is not an outage)."""

    def __init__(self) -> None:
        self.bad: set[int] = set()
        self.broken = False
        self.calls: list[list[int]] = []
        self.stored: list[int] = []

    async def __call__(self, batch: list[RawMessage]) -> None:
        offsets = [r.source.offset for r in batch]
        self.calls.append(offsets)
        if self.broken:
            raise sqlalchemy.exc.InternalError("INSERT", {}, RuntimeError("read-only transaction"))
        if self.bad & set(offsets):
            raise OverflowError("does not fit")
        self.stored.extend(offsets)

    def tries(self, offset: int) -> int:
        return sum(call == [offset] for call in self.calls)


def _kit(max_attempts: int) -> tuple[Subscriptions, list[DeadLettered]]:
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe", max_attempts=max_attempts)
    letters: list[DeadLettered] = []

    @subs.on_raw(DEADLETTERS, group_id="letters")
    async def keep(raws: list[RawMessage]) -> None:
        letters.extend(parse_event(r.value or b"") for r in raws)  # type: ignore[misc]

    return subs, letters


async def test_after_records_went_through_a_lone_bad_record_is_set_aside_in_four_calls() -> None:
    subs, letters = _kit(max_attempts=100)  # the audit's: an unknown outage stalls its trail
    store = Store()
    store.bad = {2}
    async with TestKafkaBroker(subs.broker):
        await subs._run([_raw(1)], store, lambda r: r)
        await subs._run([_raw(2)], store, lambda r: r)
        await subs._run([_raw(3)], store, lambda r: r)
    assert store.stored == [1, 3] and [letter.payload.source.offset for letter in letters] == [2]
    assert store.tries(2) == 4  # the outage check, the isolation's call, then twice more alone
    assert letters[0].payload.reason.message == "OverflowError after 4 attempts"


async def test_a_quiet_topic_with_nothing_handled_yet_gives_a_lone_record_every_attempt() -> None:
    subs, letters = _kit(max_attempts=6)
    store = Store()
    store.bad = {1}
    async with TestKafkaBroker(subs.broker):
        await subs._run([_raw(0, topic="t.other")], store, lambda r: r)  # another topic proves nothing
        await subs._run([_raw(1)], store, lambda r: r)
    assert store.tries(1) == 6 and [letter.payload.source.offset for letter in letters] == [1]
    assert letters[0].payload.reason.message == "OverflowError after 6 attempts"


async def test_a_store_that_breaks_costs_one_lone_record_per_proof_then_records_wait() -> None:
    subs, letters = _kit(max_attempts=6)
    store = Store()
    async with TestKafkaBroker(subs.broker):
        await subs._run([_raw(1)], store, lambda r: r)
        store.broken = True
        await subs._run([_raw(2)], store, lambda r: r)  # judged on the proof of record 1
        await subs._run([_raw(3)], store, lambda r: r)  # no proof left: every attempt
        store.broken = False
        await subs._run([_raw(4)], store, lambda r: r)
        store.bad = {5}
        await subs._run([_raw(5)], store, lambda r: r)  # record 4 is a new proof
    assert store.tries(2) == 4 and store.tries(3) == 6 and store.tries(5) == 4
    assert store.stored == [1, 4] and [letter.payload.source.offset for letter in letters] == [2, 3, 5]


async def test_a_service_that_allows_one_attempt_gets_no_retry_alone() -> None:
    """Training allows one (a failed run is reported, not run again): the proof adds no call."""
    subs, letters = _kit(max_attempts=1)
    store = Store()
    store.bad = {2}
    async with TestKafkaBroker(subs.broker):
        await subs._run([_raw(1)], store, lambda r: r)
        await subs._run([_raw(2)], store, lambda r: r)
        await subs._run([_raw(3), _raw(4), _raw(5), _raw(6)], store, lambda r: r)
        store.bad = {7}
        await subs._run([_raw(7), _raw(8)], store, lambda r: r)
    assert store.tries(2) == 2 and store.tries(7) == 1  # the outage check and one call; alone once
    assert store.stored == [1, 3, 4, 5, 6, 8]
    assert [letter.payload.source.offset for letter in letters] == [2, 7]
