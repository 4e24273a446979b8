"""The drift service reads its three streams with ONE consumer, so a batch may mix clean records,
predictions and labels in any order: each batch is saved once, the watch sees records, then
predictions, then labels whatever their order in the batch, a bad record is rejected alone (an event
on another stream's topic too), a batch that failed half way is observed once when it comes again,
and a redelivered batch is skipped stream by stream after a restart, without a save."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.common import ContractError, KafkaCoordinates
from contracts.events import LabelObserved, LabelObservedPayload, ModelTrained, ModelTrainedPayload
from contracts.registry import encode_event
from servicekit.arrival import admit_in_time, implausible_time
from servicekit.consumer import Delivery, RawMessage
from tests.unit.test_drift_service import T0, Harness, label, made, raws, record


def mixed_batch(n: int, first: int = 0) -> list[RawMessage]:
    """n records, their predictions and their labels, labels first and predictions last: the reverse
    of the order in which they happen."""
    rng = random.Random(first)
    ids = range(first, first + n)
    return [
        *raws("labels.observed", [label(i, "bad", i % 2 == 0) for i in ids], first),
        *raws("records.clean", [record(i, False, rng) for i in ids], first),
        *raws("predictions.made", [made(i) for i in ids], first),
    ]


def counting_saves(h: Harness) -> list[int]:
    saves: list[int] = []
    save = h.store.save

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        saves.append(1)
        return save(*args, **kwargs)

    h.store.save = counted  # type: ignore[method-assign]
    return saves


async def test_a_mixed_batch_is_saved_once_and_joins_labels_that_came_before_their_predictions(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path / "drift.db")
    saves = counting_saves(h)
    await h.service.on_streams(mixed_batch(10))
    watch = h.service.watch
    assert len(saves) == 1
    assert watch.monitors["data:amount"].n == 10 and watch.monitors["data:kind"].n == 10
    assert watch.monitors["prediction:credit"].n == 10
    assert watch.join.joined == 10 and watch.monitors["concept:credit"].n == 10
    assert h.store.pending_rows() == 0  # nothing left waiting for its other half
    topics = ("labels.observed", "records.clean", "predictions.made")
    assert h.store.offsets() == {(topic, 0): 10 for topic in topics}


async def test_a_bad_record_in_a_mixed_batch_is_rejected_alone(tmp_path: Path) -> None:
    h = Harness(tmp_path / "drift.db")
    trained = ModelTrained.create(
        ModelTrainedPayload(
            model_name="credit", model_version="4", run_id="r", metrics={}, window_start=T0, window_end=T0,
            dataset_version="1", dataset_sha256="0" * 64, feature_views=["v"], code_version="c",
        ),
        producer="training",
    )  # fmt: skip
    batch = mixed_batch(6)
    topics = ("labels.observed", "records.clean")
    elsewhere = [KafkaCoordinates(topic=t, partition=1, offset=0) for t in topics]
    batch[2:2] = [
        RawMessage(elsewhere[0], None, b'{"event_', 0),  # cut short
        RawMessage(elsewhere[1], None, encode_event(trained), 0),  # not one of the three streams
    ]
    await h.service.on_streams(batch)
    assert sorted(h.rejected) == ["not_json", "unexpected_event_type"]
    watch = h.service.watch
    assert watch.monitors["data:amount"].n == 6 and watch.join.joined == 6


async def test_a_redelivered_mixed_batch_is_skipped_after_a_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path / "drift.db")
    await h.service.on_streams(mixed_batch(20))
    h.store.close()
    again = Harness(tmp_path / "drift.db")
    await again.service.on_streams(mixed_batch(20))  # the same coordinates: all handled already
    watch = again.service.watch
    assert watch.monitors["data:amount"].n == 20 and watch.monitors["prediction:credit"].n == 20
    assert watch.join.joined == 20
    await again.service.on_streams(mixed_batch(5, first=20))  # and the next ones are not
    assert watch.monitors["data:amount"].n == 25 and watch.join.joined == 25


async def test_one_consumer_sees_what_three_did(tmp_path: Path) -> None:
    """The same events in mixed batches (one consumer) and in one batch per topic, in time order (the
    three consumers there were) leave the watch in the same state."""
    one, three = Harness(tmp_path / "one.db"), Harness(tmp_path / "three.db")
    for first in range(0, 300, 50):
        batch = mixed_batch(50, first)
        await one.service.on_streams(batch)
        for topic in ("records.clean", "predictions.made", "labels.observed"):
            await three.service.on_streams([r for r in batch if r.source.topic == topic])
    a, b = one.service.watch, three.service.watch
    assert {k: m.n for k, m in a.monitors.items()} == {k: m.n for k, m in b.monitors.items()}
    assert a.join.joined == b.join.joined == 300
    assert one.service.detectors()["online_quality"] == three.service.detectors()["online_quality"]


async def test_an_event_on_another_streams_topic_is_rejected(tmp_path: Path) -> None:
    """A producer allowed to write labels cannot feed the watch a prediction (here one of a new model
    version, which would restart the champion's monitors) or a clean record through the labels topic."""
    h = Harness(tmp_path / "drift.db")
    await h.service.on_streams(mixed_batch(20))
    rng = random.Random(9)
    smuggled = [made(500, version="999"), record(501, True, rng)]
    await h.service.on_streams(raws("labels.observed", smuggled, 100))
    assert h.rejected == ["unexpected_event_type", "unexpected_event_type"]
    watch = h.service.watch
    assert watch.versions == {"credit": "3"} and watch.monitors["concept:credit"].n == 20
    assert watch.monitors["data:amount"].n == 20


@pytest.mark.parametrize("fails", ["observing", "saving"])
async def test_a_batch_that_fails_half_way_is_observed_once_when_it_comes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """Kafka redelivers a failed batch whole: what the watch took of it in memory is dropped first."""
    h = Harness(tmp_path / "drift.db")
    await h.service.on_streams(mixed_batch(10))
    if fails == "observing":  # the records and predictions are in, the labels fail
        monkeypatch.setattr(h.service.watch, "observe_labels", lambda batch: 1 / 0)
    else:
        monkeypatch.setattr(h.store, "save", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        await h.service.on_streams(mixed_batch(10, first=10))
    monkeypatch.undo()
    await h.service.on_streams(mixed_batch(10, first=10))  # redelivered
    watch = h.service.watch
    assert watch.monitors["data:amount"].n == 20 and watch.monitors["prediction:credit"].n == 20
    assert watch.join.joined == 20 and watch.monitors["concept:credit"].n == 20
    assert h.store.offsets()[("records.clean", 0)] == 20


async def test_a_batch_handled_already_is_skipped_without_a_save(tmp_path: Path) -> None:
    h = Harness(tmp_path / "drift.db")
    await h.service.on_streams(mixed_batch(10))
    saves = counting_saves(h)
    await h.service.on_streams(mixed_batch(10))  # read again (an upgrade's new group, a rebalance)
    assert saves == [] and h.service.watch.monitors["data:amount"].n == 10


async def test_a_store_that_cannot_reload_after_a_failure_fails_the_retry_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The half-observed watch is never used again: while the saved state cannot be read back, each
    attempt fails (the batch waits), and once it can, the batch is observed once."""
    h = Harness(tmp_path / "drift.db")
    await h.service.on_streams(mixed_batch(10))
    monkeypatch.setattr(h.service.watch, "observe_labels", lambda batch: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        await h.service.on_streams(mixed_batch(10, first=10))
    monkeypatch.undo()
    load = h.store.load
    monkeypatch.setattr(h.store, "load", lambda config: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        await h.service.on_streams(mixed_batch(10, first=10))
    monkeypatch.setattr(h.store, "load", load)
    await h.service.on_streams(mixed_batch(10, first=10))
    assert h.service.watch.monitors["data:amount"].n == 20 and h.service.watch.join.joined == 20


async def test_an_alarm_of_a_batch_that_failed_once_is_counted_once(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    from tests.unit.test_drift_service import feed_records

    h = Harness(tmp_path / "drift.db")
    alarms = {"kind": "data", "detector": "RankCusum"}
    before = REGISTRY.get_sample_value("drift_alarms_total", alarms) or 0.0
    save, failed = h.store.save, []

    def fails_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        if args[2] and not failed:  # the batch whose outbox holds the alarm
            failed.append(1)
            raise OSError("disk full")
        return save(*args, **kwargs)

    h.store.save = fails_once  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await feed_records(h, 3000, shift_at=2000)
    assert (
        failed and (REGISTRY.get_sample_value("drift_alarms_total", alarms) or 0.0) == before
    )  # not saved: not counted
    await feed_records(h, 3000, shift_at=2000)  # Kafka delivers it all again
    assert len(h.sent) == 1
    assert REGISTRY.get_sample_value("drift_alarms_total", alarms) == before + 1


def test_settings_that_give_two_streams_one_topic_are_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from services.drift.settings import DriftSettings

    with pytest.raises(ValidationError, match="topics must differ"):
        DriftSettings(state_dir=tmp_path, records_topic="shared", labels_topic="shared")


@pytest.mark.parametrize(
    "field, value",
    [("chi_square_reference", 5), ("chi_square_reference", 10**6), ("chi_square_reference", "many"),
     ("chi_square_alpha", 0), ("chi_square_alpha", 1.5), ("chi_square_alpha", "nan")],
)  # fmt: skip
def test_garbage_categorical_test_settings_are_refused_with_the_field_named(
    tmp_path: Path, field: str, value: object
) -> None:
    from pydantic import ValidationError

    from services.drift.settings import DriftSettings

    with pytest.raises(ValidationError, match=field):
        DriftSettings.model_validate({"state_dir": tmp_path, field: value})


async def test_a_label_dated_ahead_of_its_arrival_is_refused_and_the_join_keeps_its_clock(
    tmp_path: Path,
) -> None:
    """A producer's label from the year 9999 would move the join's clock for good: every prediction
    waiting for its label, and every later one, would expire at once (and the clock is saved)."""
    h = Harness(tmp_path / "drift.db")
    await h.service.on_streams(mixed_batch(10))
    assert h.service.watch.join.joined == 10
    future = LabelObserved.create(
        LabelObservedPayload(
            dataset="loan_applications", entity_id="e99", label="bad", prediction_id="p99",
            event_time=datetime(9999, 12, 31, tzinfo=UTC),
        ),
        producer="labels",
    )  # fmt: skip
    await h.service.on_streams(raws("labels.observed", [future], 10))
    assert h.rejected == ["ahead_of_arrival"]
    await h.service.on_streams(mixed_batch(10, first=20))
    assert h.service.watch.join.joined == 20  # the ten new predictions met their labels
    restarted = Harness(tmp_path / "drift.db")
    await restarted.service.on_streams(mixed_batch(5, first=40))
    assert restarted.service.watch.join.joined == 25


def test_an_event_time_is_held_to_its_records_kafka_timestamp() -> None:
    arrived = datetime(2026, 3, 1, tzinfo=UTC)
    raw = RawMessage(
        KafkaCoordinates(topic="t", partition=0, offset=0), None, b"", int(arrived.timestamp() * 1000)
    )
    assert implausible_time(arrived + timedelta(seconds=299), raw, "payload.event_time") is None
    assert implausible_time(arrived - timedelta(days=3650), raw, "payload.event_time") is None  # late is fine
    assert implausible_time(datetime(1677, 9, 22, tzinfo=UTC), raw, "payload.event_time") is None
    ancient = implausible_time(datetime(1, 1, 1, tzinfo=UTC), raw, "payload.event_time")
    assert ancient is not None and ancient.code == "too_early"
    refused = implausible_time(arrived + timedelta(hours=2), raw, "payload.event_time")
    assert refused is not None and refused.code == "ahead_of_arrival"
    assert refused.message.startswith("payload.event_time lies 7200 s after the record reached Kafka")
    untimed = RawMessage(raw.source, None, b"", 0)  # no timestamp: the consumer's clock
    assert implausible_time(arrived + timedelta(hours=2), untimed, "t", clock=arrived.timestamp) is not None
    assert implausible_time(arrived + timedelta(hours=2), untimed, "t", clock=lambda: 2e9) is None


async def test_admit_in_time_refuses_each_implausibly_dated_label_alone() -> None:
    """Training's labels consumer: the refused ones are dead-lettered with their reason, the rest go on."""
    arrived = datetime(2026, 3, 1, tzinfo=UTC)
    timestamp_ms = int(arrived.timestamp() * 1000)

    def delivery(offset: int, event_time: datetime) -> Delivery[LabelObserved]:
        event = LabelObserved.create(
            LabelObservedPayload(dataset="d", entity_id=f"e{offset}", label="bad", event_time=event_time),
            producer="labels",
        )
        where = KafkaCoordinates(topic="labels.observed", partition=0, offset=offset)
        return Delivery(event, RawMessage(where, None, encode_event(event), timestamp_ms))

    refused: list[tuple[int, str]] = []

    async def refuse(raw: RawMessage, err: ContractError) -> None:
        refused.append((raw.source.offset, err.code))

    future, ancient = datetime(9999, 1, 1, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)
    batch = [delivery(0, arrived), delivery(1, future), delivery(2, T0), delivery(3, ancient)]
    admitted = await admit_in_time(batch, lambda e: e.payload.event_time, "payload.event_time", refuse)
    assert [d.source.offset for d in admitted] == [0, 2]
    assert refused == [(1, "ahead_of_arrival"), (3, "too_early")]
