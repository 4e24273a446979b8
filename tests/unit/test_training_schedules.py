"""The schedule runner on a real state file, with a driven clock and a recording bus: one request per due
time across restarts, a crash on either side of the publish trained once, pause, labels, the status."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.events import TrainingRequested
from services.training.adapters.state import TrainingState
from services.training.domain.policy import GatePolicy
from services.training.domain.schedule import Schedule
from services.training.handlers import TrainingService
from services.training.trainer import Trainer
from tests.unit.test_training_handlers import TOPICS, Bus, label
from tests.unit.test_training_support import FakeRegistry, FakeSource, feature_frame

T0 = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def start(db: Path, schedule: Schedule, clock: Clock, bus: Bus) -> TrainingService:
    """A training service on the state file `db` (a new one per call: a restart)."""
    policy = GatePolicy(schedule=schedule)
    state = TrainingState(db)
    trainer = Trainer(state, FakeSource(feature_frame(5)), FakeRegistry(), lambda: policy, "code")
    service = TrainingService(
        trainer, state, bus.publish, TOPICS, "credit", "loan_applications", lambda: policy
    )
    service.clock = clock
    return service


def requests(bus: Bus) -> list[TrainingRequested]:
    return [e for e, topic in bus.sent if isinstance(e, TrainingRequested) and topic == TOPICS.requests]


HOURLY = Schedule(cron="0 * * * *")


async def test_a_cron_time_fires_once_across_a_restart_and_missed_times_once(tmp_path: Path) -> None:
    bus, clock = Bus(), Clock(T0)
    service = start(tmp_path / "s.db", HOURLY, clock, bus)
    assert (await service.schedules.check()).reason == "not_due"  # armed now: 9:00 is before it
    clock.now = T0 + timedelta(hours=1)  # 10:00:30
    assert (await service.schedules.check()).reason == "fire"
    await service.schedules.check()
    restarted = start(tmp_path / "s.db", HOURLY, clock, bus)
    assert (await restarted.schedules.check()).reason == "not_due"
    [request] = requests(bus)
    assert request.payload.reason == "schedule" and request.payload.requested_by == "schedule:cron"
    assert request.payload.schedule is not None
    assert request.payload.schedule.due_at == datetime(2026, 3, 2, 10, tzinfo=UTC)

    clock.now = T0 + timedelta(hours=5)  # down over 11:00 ... 14:00: one request, for 14:00
    again = start(tmp_path / "s.db", HOURLY, clock, bus)
    await again.schedules.check()
    await again.schedules.check()
    assert [r.payload.schedule.due_at.hour for r in requests(bus) if r.payload.schedule] == [10, 14]


async def test_a_crash_before_the_publish_sends_the_saved_request_at_the_next_start(tmp_path: Path) -> None:
    clock, bus = Clock(T0), Bus()
    await start(tmp_path / "s.db", HOURLY, clock, bus).schedules.check()  # armed at T0

    async def broker_gone(*_: object) -> None:
        raise ConnectionError("broker gone")

    crashing = start(tmp_path / "s.db", HOURLY, clock, bus)
    crashing.schedules.publish = broker_gone
    clock.now = T0 + timedelta(hours=1)
    with pytest.raises(ConnectionError):
        await crashing.schedules.check()
    assert requests(bus) == []
    clock.now = T0 + timedelta(hours=1, minutes=20)
    await start(tmp_path / "s.db", HOURLY, clock, bus).schedules.check()
    [request] = requests(bus)
    assert request.payload.schedule is not None and request.payload.schedule.due_at.hour == 10


async def test_a_crash_after_the_publish_repeats_the_same_event_id_and_it_is_trained_once(
    tmp_path: Path,
) -> None:
    clock, bus = Clock(T0), Bus()
    service = start(tmp_path / "s.db", HOURLY, clock, bus)
    await service.schedules.check()
    clock.now = T0 + timedelta(hours=1)
    await service.schedules.check()
    with sqlite3.connect(tmp_path / "s.db") as db:  # as if it crashed before recording the publish
        db.execute("UPDATE schedule_outbox SET published = 0")
    restarted = start(tmp_path / "s.db", HOURLY, clock, bus)
    await restarted.schedules.check()
    first, second = requests(bus)
    assert first.event_id == second.event_id and first == second
    for request in (first, second):  # both copies reach the training consumer
        await restarted.on_training_requested(request)
    assert [e.event_type for e, _ in bus.sent].count("ModelRejected") == 1  # one run (too few labels)


async def test_a_changed_cron_expression_is_armed_anew_and_does_not_fire_at_once(tmp_path: Path) -> None:
    clock, bus = Clock(T0), Bus()
    await start(tmp_path / "s.db", Schedule(cron="0 3 * * *"), clock, bus).schedules.check()
    clock.now = T0 + timedelta(hours=3)  # 12:00:30; hourly would have been due at 10, 11 and 12
    changed = start(tmp_path / "s.db", HOURLY, clock, bus)
    assert (await changed.schedules.check()).reason == "not_due"
    clock.now = T0 + timedelta(hours=4)
    assert (await changed.schedules.check()).reason == "fire"
    [request] = requests(bus)
    assert request.payload.schedule is not None and request.payload.schedule.due_at.hour == 13


async def test_a_due_time_while_paused_is_skipped_not_made_up_on_resume(tmp_path: Path) -> None:
    clock, bus = Clock(T0), Bus()
    service = start(tmp_path / "s.db", HOURLY, clock, bus)
    await service.schedules.check()
    await service.set_paused(True, "ops:alice")
    clock.now = T0 + timedelta(hours=1)
    assert (await service.schedules.check()).reason == "paused"
    await service.set_paused(False, "ops:alice")
    assert (await service.schedules.check()).reason == "not_due"
    assert requests(bus) == []
    status = (await service.retraining_status())["schedule"]
    assert status["triggers"]["cron"]["last"]["outcome"] == "paused"
    clock.now = T0 + timedelta(hours=2)
    assert (await service.schedules.check()).reason == "fire" and len(requests(bus)) == 1


async def test_every_n_labels_fires_once_per_run_and_again_after_the_run(tmp_path: Path) -> None:
    clock, bus = Clock(T0), Bus()
    service = start(tmp_path / "s.db", Schedule(every_labels=3), clock, bus)
    await service.on_labels([label(f"a{i}", "good", T0) for i in range(2)])
    assert (await service.schedules.check()).reason == "not_due"
    await service.on_labels([label("a2", "bad", T0)])
    await service.schedules.check()
    await service.on_labels([label(f"b{i}", "good", T0) for i in range(5)])  # before the run: same cycle
    await service.schedules.check()
    [request] = requests(bus)
    assert request.payload.schedule is not None and request.payload.schedule.trigger == "labels"
    await service.on_training_requested(request)  # the run finishes: labels count from here
    await service.schedules.check()
    await service.on_labels([label(f"c{i}", "good", T0) for i in range(3)])
    await service.schedules.check()
    first, second = requests(bus)
    assert first.payload.schedule and second.payload.schedule
    assert second.payload.schedule.due_at > first.payload.schedule.due_at


async def test_the_status_shows_each_triggers_next_due_time_and_last_fire(tmp_path: Path) -> None:
    clock, bus = Clock(T0), Bus()
    schedule = Schedule(cron="0 * * * *", every_labels=10, max_champion_age="7d")
    service = start(tmp_path / "s.db", schedule, clock, bus)
    await service.schedules.check()
    clock.now = T0 + timedelta(hours=1)
    await service.schedules.check()
    status = (await service.retraining_status())["schedule"]
    assert status["on"] and status["max_champion_age_s"] == 7 * 86400
    cron = status["triggers"]["cron"]
    assert cron["next_due"] == "2026-03-02T11:00:00+00:00"
    assert cron["last"]["outcome"] == "fired" and cron["last"]["event_id"] == str(requests(bus)[0].event_id)
    assert status["triggers"]["labels"] | {"last": None} == {
        "next_due": None, "due_now": False, "last": None, "labels_since_last_run": 0, "needed": 10,
    }  # fmt: skip
    assert status["triggers"]["age"]["next_due"] is None  # no champion yet
