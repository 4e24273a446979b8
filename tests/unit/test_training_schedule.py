"""The retraining schedule's pure decision (cron, every N labels, champion age, first wins, pause,
missed due times) and its policy section (garbage refused with a message that names the field)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.training.domain.policy import GatePolicy, load_policy
from services.training.domain.schedule import (
    Due,
    Schedule,
    ScheduleInputs,
    decide_schedule,
    parse_duration,
    schedule_event_id,
)
from services.training.errors import PolicyError
from services.training.settings import DEFAULT_POLICY, TrainingSettings

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)  # a Monday
ARMED = datetime(2026, 3, 1, tzinfo=UTC)


def inputs(**changes: object) -> ScheduleInputs:
    return ScheduleInputs(**{"armed_at": ARMED, **changes})  # type: ignore[arg-type]


def test_everything_is_off_by_default_and_in_the_shipped_policy() -> None:
    assert not GatePolicy().schedule.on and not load_policy(DEFAULT_POLICY).schedule.on
    assert decide_schedule(Schedule(), inputs(nth_label_at=NOW), NOW).reason == "off"


def test_cron_fires_at_its_latest_time_and_names_the_next() -> None:
    decision = decide_schedule(Schedule(cron="0 6 * * *"), inputs(), NOW)
    assert decision.fires == Due("cron", datetime(2026, 3, 2, 6, tzinfo=UTC))
    assert decision.next_due["cron"] == datetime(2026, 3, 3, 6, tzinfo=UTC)


def test_cron_times_before_the_schedule_was_armed_never_fire() -> None:
    armed_today = inputs(armed_at=datetime(2026, 3, 2, 7, tzinfo=UTC))
    decision = decide_schedule(Schedule(cron="0 6 * * *"), armed_today, NOW)
    assert decision.reason == "not_due" and decision.fires is None


def test_missed_cron_times_fire_once_at_the_latest() -> None:
    schedule = Schedule(cron="*/10 * * * *")
    last = {"cron": datetime(2026, 3, 2, 9, tzinfo=UTC)}  # down since 9:00: 9:10 ... 12:30 were missed
    decision = decide_schedule(schedule, inputs(last_due=last), NOW)
    assert decision.due == (Due("cron", NOW),)
    after = decide_schedule(schedule, inputs(last_due={"cron": NOW}), NOW + timedelta(minutes=9))
    assert after.reason == "not_due" and after.next_due["cron"] == NOW + timedelta(minutes=10)


def test_labels_fire_once_when_the_nth_new_label_came() -> None:
    schedule = Schedule(every_labels=100)
    assert decide_schedule(schedule, inputs(labels_since_run=99), NOW).reason == "not_due"
    reached = NOW - timedelta(minutes=3)
    decision = decide_schedule(schedule, inputs(labels_since_run=120, nth_label_at=reached), NOW)
    assert decision.fires == Due("labels", reached)
    fired = inputs(labels_since_run=150, nth_label_at=reached, last_due={"labels": reached})
    assert decide_schedule(schedule, fired, NOW).reason == "not_due"  # until a run finishes


def test_age_fires_each_period_the_champion_stays_and_not_without_one() -> None:
    schedule = Schedule(max_champion_age="7d")
    since = NOW - timedelta(days=7, hours=1)
    decision = decide_schedule(schedule, inputs(champion_since=since), NOW)
    assert decision.fires == Due("age", since + timedelta(days=7))
    assert decision.next_due["age"] == since + timedelta(days=14)
    fired = inputs(champion_since=since, last_due={"age": since + timedelta(days=7)})
    assert decide_schedule(schedule, fired, NOW).reason == "not_due"
    assert decide_schedule(schedule, fired, since + timedelta(days=14)).fires == Due(
        "age", since + timedelta(days=14)
    )
    assert decide_schedule(schedule, inputs(), NOW).next_due == {"age": None}


def test_the_first_due_wins_and_the_others_are_due_with_it() -> None:
    schedule = Schedule(cron="0 12 * * *", every_labels=10, max_champion_age=3600)
    all_due = inputs(nth_label_at=NOW - timedelta(minutes=5), champion_since=NOW - timedelta(minutes=100))
    decision = decide_schedule(schedule, all_due, NOW)
    assert [d.trigger for d in decision.due] == ["age", "cron", "labels"]  # 11:50, 12:00, 12:25
    assert decision.fires == Due("age", NOW - timedelta(minutes=40))


def test_paused_reports_the_due_times_but_fires_none() -> None:
    decision = decide_schedule(Schedule(cron="0 6 * * *"), inputs(paused=True), NOW)
    assert decision.reason == "paused" and decision.fires is None and decision.due


def test_the_event_id_depends_on_model_trigger_and_due_time_only() -> None:
    due = Due("cron", NOW)
    assert schedule_event_id("credit", due) == schedule_event_id("credit", Due("cron", NOW.astimezone()))
    assert schedule_event_id("credit", due) != schedule_event_id("credit", Due("labels", NOW))
    assert schedule_event_id("credit", due) != schedule_event_id("fraud", due)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600)],
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value).total_seconds() == seconds


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("schedule: {cron: garbage}", "needs 5 fields"),
        ("schedule: {cron: '61 * * * *'}", "is not a cron expression"),
        ("schedule: {cron: '0 0 31 2 *'}", "names no time that exists"),
        ("schedule: {cron: '* * * * * *'}", "needs 5 fields"),
        ("schedule: {every_labels: 0}", "greater than or equal to 1"),
        ("schedule: {every_labels: many}", "schedule.every_labels"),
        ("schedule: {max_champion_age: 7 days}", "is not a duration"),
        ("schedule: {max_champion_age: 0}", "longer than zero"),
        ("schedule: {max_champion_age: -5}", "longer than zero"),
        ("schedule: {max_champion_age: true}", "is not a duration"),
        ("schedule: {crom: '* * * * *'}", "schedule.crom"),
        ("schedule: daily", "schedule"),
    ],
)
def test_garbage_schedules_are_refused_with_a_clear_message(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(line + "\n")
    with pytest.raises(PolicyError, match="invalid") as refused:
        load_policy(path)
    assert message in str(refused.value)


def test_a_full_schedule_loads() -> None:
    schedule = Schedule.model_validate({"cron": "@daily", "every_labels": 500, "max_champion_age": "7d"})
    assert schedule.on and schedule.max_champion_age == timedelta(days=7)


def test_environment_overrides_win_over_the_file_and_off_switches_a_trigger_off(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("min_labels: 300\nschedule: {cron: '0 3 * * *', every_labels: 100}\n")
    policy = load_policy(path, {"every_labels": "off", "max_champion_age": "3600"})
    assert policy.min_labels == 300 and policy.schedule.cron == "0 3 * * *"
    assert policy.schedule.every_labels is None and policy.schedule.max_champion_age == timedelta(hours=1)
    settings = TrainingSettings(schedule_every_labels="250", schedule_cron="@daily")
    assert load_policy(DEFAULT_POLICY, settings.schedule_overrides).schedule == Schedule(
        cron="@daily", every_labels=250
    )
    with pytest.raises(PolicyError, match=r"TRAINING_SCHEDULE_\* overrides \['every_labels'\]"):
        load_policy(DEFAULT_POLICY, {"every_labels": "lots"})


def test_the_module_examples_hold() -> None:
    import doctest

    from services.training.domain import schedule as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
