"""The features use case with a fake Feast and a real ledger: one push and one FeaturesUpdated per batch,
duplicates skipped (redelivery, twice in a batch), records the stores cannot hold dead-lettered alone,
other datasets skipped. Decoding is the kit's (tests/unit/test_servicekit_consumer.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.common import FieldError, KafkaCoordinates
from contracts.envelope import Event
from contracts.events import FeaturesUpdated, RecordCleaned, RecordCleanedPayload
from contracts.registry import encode_event
from feature_repo.names import ENTITY_KEY, FEATURE_VIEW
from servicekit.consumer import Delivery, RawMessage
from services.features.adapters.ledger import PushLedger
from services.features.domain.rows import FeatureRow
from services.features.handlers import FeaturesHandler
from workbench.demo_data import ApplicationStream

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakePusher:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[FeatureRow]] = []
        self.fail = fail

    def push(self, rows: list[FeatureRow]) -> None:
        if self.fail:
            raise RuntimeError("feature store down")
        self.batches.append(rows)


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[Event[Any], str]] = []
        self.letters: list[tuple[RawMessage, str, list[FieldError]]] = []

    async def publish(self, event: Event[Any], topic: str) -> None:
        self.published.append((event, topic))

    async def dead_letter(self, raw: RawMessage, code: str, message: str, errors: list[FieldError]) -> None:
        self.letters.append((raw, code, errors))


def cleaned(n: int, seed: int = 5, dataset: str = "loan_applications") -> list[RecordCleaned]:
    events = []
    for i, app in enumerate(ApplicationStream(seed=seed, id_prefix=f"u{seed}").take(n)):
        payload = RecordCleanedPayload(
            dataset=dataset,
            entity_id=app.record["application_id"],
            event_time=T0 + timedelta(minutes=i),
            record=app.record,
            source=KafkaCoordinates(topic="records.raw", partition=0, offset=i),
            scrubbed_fields=["email"],
        )
        events.append(RecordCleaned.create(payload, producer="ingest"))
    return events


def raw(value: bytes | None, offset: int) -> RawMessage:
    return RawMessage(KafkaCoordinates(topic="records.clean", partition=0, offset=offset), None, value, 0)


def raws(events: list[RecordCleaned], first_offset: int = 0) -> list[Delivery[RecordCleaned]]:
    """The batch as the kit hands it over: each record decoded once, with the record it came from."""
    return [Delivery(e, raw(encode_event(e), first_offset + i)) for i, e in enumerate(events)]


def with_payload(event: RecordCleaned, **changes: Any) -> RecordCleaned:
    return event.model_copy(update={"payload": event.payload.model_copy(update=changes)})


@pytest.fixture
def parts(tmp_path: Path) -> tuple[FeaturesHandler, FakePusher, Recorder]:
    pusher, recorder = FakePusher(), Recorder()
    handler = FeaturesHandler(
        pusher=pusher,
        ledger=PushLedger(tmp_path / "ledger.db"),
        publish=recorder.publish,
        dead_letter=recorder.dead_letter,
        dataset="loan_applications",
        updated_topic="features.updated",
    )
    return handler, pusher, recorder


async def test_one_push_and_one_features_updated_per_batch(parts: Any) -> None:
    handler, pusher, recorder = parts
    events = cleaned(4)
    update = await handler.handle(raws(events))
    assert len(pusher.batches) == 1 and [r[ENTITY_KEY] for r in pusher.batches[0]] == [
        e.payload.entity_id for e in events
    ]
    [(published, topic)] = recorder.published
    assert published is update and topic == "features.updated"
    assert isinstance(update, FeaturesUpdated)
    assert update.payload.feature_view == FEATURE_VIEW and update.payload.rows == 4
    assert update.payload.entity_ids == [e.payload.entity_id for e in events]
    assert update.payload.event_time_min == T0 and update.payload.event_time_max == T0 + timedelta(minutes=3)
    assert [s.offset for s in update.payload.sources] == [0, 1, 2, 3]
    assert (
        update.causation_id == str(events[0].event_id) and update.correlation_id == events[0].correlation_id
    )


async def test_redelivered_records_are_not_pushed_again(parts: Any) -> None:
    handler, pusher, recorder = parts
    events = cleaned(3)
    await handler.handle(raws(events))
    assert await handler.handle(raws(events)) is None  # the whole batch again: nothing to do
    more = cleaned(2, seed=6)
    update = await handler.handle(raws(events[1:] + more, first_offset=10))  # overlapping redelivery
    assert [len(b) for b in pusher.batches] == [3, 2]
    assert update is not None and update.payload.entity_ids == [e.payload.entity_id for e in more]
    assert handler.ledger.count() == 5 and len(recorder.published) == 2


async def test_the_same_event_twice_in_one_batch_is_pushed_once(parts: Any) -> None:
    handler, pusher, _ = parts
    [event] = cleaned(1)
    await handler.handle(raws([event, event]))
    assert len(pusher.batches[0]) == 1


async def test_the_features_updated_id_is_derived_from_the_batch(tmp_path: Path) -> None:
    events = cleaned(3)
    ids = []
    for run in range(2):  # the same batch handled by two fresh ledgers (as after a crash): same event id
        recorder = Recorder()
        handler = FeaturesHandler(
            FakePusher(),
            PushLedger(tmp_path / f"l{run}.db"),
            recorder.publish,
            recorder.dead_letter,
            "loan_applications",
            "features.updated",
        )
        update = await handler.handle(raws(list(reversed(events)) if run else events))
        assert update is not None
        ids.append(update.event_id)
    assert ids[0] == ids[1]


async def test_records_the_stores_cannot_hold_are_dead_lettered_alone(parts: Any) -> None:
    handler, pusher, recorder = parts
    good = cleaned(2)
    odd = cleaned(4, seed=8)
    record = dict(odd[0].payload.record)
    del record["credit_amount"]
    huge = dict(odd[3].payload.record) | {"age_in_years": 2**70}
    batch = [
        with_payload(odd[0], record=record),  # a feature missing
        with_payload(odd[1], event_time=datetime(9999, 12, 31, tzinfo=UTC)),  # past nanosecond time
        with_payload(odd[2], event_time=datetime(1, 1, 1, tzinfo=UTC)),
        with_payload(odd[3], record=huge),  # past int64
        *good,
    ]
    update = await handler.handle(raws(batch))
    letters = [(letter[0].source.offset, letter[1], letter[2][0].field) for letter in recorder.letters]
    assert letters == [
        (0, "not_a_feature_row", "payload.record.credit_amount"),
        (1, "not_a_feature_row", "payload.event_time"),
        (2, "not_a_feature_row", "payload.event_time"),
        (3, "not_a_feature_row", "payload.record.age_in_years"),
    ]
    assert update is not None and update.payload.rows == 2 and len(pusher.batches) == 1
    assert [row[ENTITY_KEY] for row in pusher.batches[0]] == [e.payload.entity_id for e in good]


async def test_records_of_other_datasets_are_skipped_without_a_dead_letter(parts: Any) -> None:
    handler, pusher, recorder = parts
    assert await handler.handle(raws(cleaned(2, dataset="transactions"))) is None
    assert not pusher.batches and not recorder.letters and not recorder.published


async def test_a_failed_push_records_nothing_so_redelivery_pushes(tmp_path: Path) -> None:
    recorder, ledger = Recorder(), PushLedger(tmp_path / "ledger.db")
    failing = FeaturesHandler(
        FakePusher(fail=True), ledger, recorder.publish, recorder.dead_letter, "loan_applications", "f"
    )
    events = cleaned(2)
    with pytest.raises(RuntimeError):
        await failing.handle(raws(events))
    assert ledger.count() == 0 and not recorder.published
    working = FeaturesHandler(
        FakePusher(), ledger, recorder.publish, recorder.dead_letter, "loan_applications", "f"
    )
    assert await working.handle(raws(events)) is not None and ledger.count() == 2


def test_the_ledger_survives_a_restart(tmp_path: Path) -> None:
    ledger = PushLedger(tmp_path / "ledger.db")
    ledger.record([("e1", "a1"), ("e2", "a2")])
    ledger.record([("e1", "a1")])  # recording twice is harmless
    ledger.close()
    reopened = PushLedger(tmp_path / "ledger.db")
    assert reopened.unseen(["e1", "e2", "e3"]) == {"e3"} and reopened.count() == 2
    assert reopened.unseen([]) == set()
    assert reopened.unseen([f"x{i}" for i in range(1200)]) == {f"x{i}" for i in range(1200)}  # chunks
