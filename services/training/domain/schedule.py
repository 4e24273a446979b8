"""Scheduled retraining: which trigger of the policy's `schedule:` is due now (pure; no I/O).

Three triggers, any of them on, whichever comes first: a cron expression (UTC, parsed by croniter),
every N new labels since the last training run finished, and a champion older than a maximum age.
Each trigger has a sequence of due times, and a due time fires at most once: the runner keeps, per
trigger, the last due time it fired (or skipped), and only a later one is due. Missed due times
(the service was down) fire once, at the latest of them. When several triggers are due together, the
earliest due time fires and the others are marked as covered by it: one training, not three.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
>>> armed = datetime(2026, 1, 1, 9, tzinfo=UTC)
>>> cron = Schedule(cron="0 * * * *")  # every hour on the hour
>>> decision = decide_schedule(cron, ScheduleInputs(armed_at=armed), now)
>>> decision.fires.trigger, decision.fires.due_at.hour  # 10, 11 and 12 were missed: 12 fires, once
('cron', 12)
>>> decision.next_due["cron"].hour
13
>>> later = ScheduleInputs(armed_at=armed, last_due={"cron": decision.fires.due_at})
>>> decide_schedule(cron, later, now).reason
'not_due'
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from croniter import CroniterBadDateError, CroniterError, croniter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

Trigger = Literal["cron", "labels", "age"]
TRIGGERS: tuple[Trigger, ...] = ("cron", "labels", "age")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")  # no unit: seconds
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Event ids of scheduled requests are uuid5 under this namespace: the same (model, trigger, due time)
# always gets the same id, so a request published twice is trained once (the run ledger is by id).
SCHEDULE_NAMESPACE = uuid.UUID("5b0d3c1e-7f7a-4d6e-9a53-1c2f0e0c5e11")


def parse_duration(value: object) -> timedelta:
    """Seconds (an integer) or a number and a unit: "90s", "15m", "12h", "7d", "2w".

    >>> parse_duration("7d"), parse_duration(3600)
    (datetime.timedelta(days=7), datetime.timedelta(seconds=3600))
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = int(match[1]) * _UNIT_S[match[2] or "s"]
    else:
        raise ValueError(f"{value!r} is not a duration: use seconds (an integer) or e.g. '12h', '7d'")
    if seconds <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Schedule(BaseModel):
    """The policy's `schedule:` section; every trigger is off unless set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str | None = Field(
        None,
        description="Cron expression in UTC, five fields (minute hour day-of-month month day-of-week) "
        "or an alias such as @daily; retrain at each time it names.",
    )
    every_labels: int | None = Field(
        None, ge=1, description="Retrain once this many new labels came since the last training run finished."
    )
    max_champion_age: Duration | None = Field(
        None,
        description="Retrain when the champion has been champion this long (seconds, or '12h', '7d'), "
        "and again each further such period while it stays champion.",
    )

    @field_validator("cron")
    @classmethod
    def _cron_valid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        fields = value.split()
        if not fields or (len(fields) != 5 and not (len(fields) == 1 and fields[0].startswith("@"))):
            raise ValueError(
                f"cron {value!r} needs 5 fields (minute hour day-of-month month day-of-week) or an alias"
            )
        try:
            croniter(value, datetime(2026, 1, 1)).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"cron {value!r} names no time that exists") from None
        except (CroniterError, ValueError, KeyError) as exc:
            raise ValueError(f"cron {value!r} is not a cron expression: {exc}") from None
        return value

    @property
    def on(self) -> bool:
        return any(v is not None for v in (self.cron, self.every_labels, self.max_champion_age))


@dataclass(frozen=True)
class ScheduleInputs:
    armed_at: datetime  # when this cron expression was first checked: its times before never fire
    last_due: Mapping[Trigger, datetime] = field(default_factory=dict)  # last fired (or skipped)
    labels_since_run: int = 0  # labelled entities received since the last training run finished
    nth_label_at: datetime | None = None  # when the every_labels-th of them arrived (None: fewer)
    champion_since: datetime | None = None  # when the champion became champion (None: no champion)
    paused: bool = False


@dataclass(frozen=True)
class Due:
    trigger: Trigger
    due_at: datetime


@dataclass(frozen=True)
class ScheduleDecision:
    reason: Literal["off", "not_due", "paused", "fire"]
    due: tuple[Due, ...] = ()  # every trigger due now, earliest first: all are marked when one fires
    next_due: dict[Trigger, datetime | None] = field(default_factory=dict)

    @property
    def fires(self) -> Due | None:
        return self.due[0] if self.reason == "fire" else None


def decide_schedule(schedule: Schedule, inputs: ScheduleInputs, now: datetime) -> ScheduleDecision:
    """Which trigger fires now (the earliest due), every trigger due, and each one's next due time.

    Paused: the due times are reported (and the runner skips them: they are not made up on resume).
    """
    if not schedule.on:
        return ScheduleDecision("off")
    found: list[Due] = []
    next_due: dict[Trigger, datetime | None] = {}
    if schedule.cron is not None:
        after = max(inputs.last_due.get("cron", inputs.armed_at), inputs.armed_at)
        due, next_due["cron"] = cron_due(schedule.cron, after, now)
        found += [Due("cron", due)] if due else []
    if schedule.every_labels is not None:
        due = labels_due(inputs.nth_label_at, inputs.last_due.get("labels"))
        next_due["labels"] = due  # None: not enough labels yet (the status shows the count)
        found += [Due("labels", due)] if due else []
    if schedule.max_champion_age is not None:
        since = inputs.champion_since
        due, next_due["age"] = age_due(since, schedule.max_champion_age, inputs.last_due.get("age"), now)
        found += [Due("age", due)] if due else []
    found.sort(key=lambda d: (d.due_at, TRIGGERS.index(d.trigger)))
    if not found:
        return ScheduleDecision("not_due", (), next_due)
    return ScheduleDecision("paused" if inputs.paused else "fire", tuple(found), next_due)


def cron_due(expression: str, after: datetime, now: datetime) -> tuple[datetime | None, datetime]:
    """The latest cron time in (after, now] (None: none), and the first one after now.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    >>> cron_due("0 12 * * *", t - timedelta(seconds=1), t)[0] == t  # a due time exactly now is due
    True
    """
    upcoming = croniter(expression, now).get_next(datetime)
    latest = croniter(expression, now + timedelta(microseconds=1)).get_prev(datetime)
    return (latest if latest > after else None), upcoming


def labels_due(nth_label_at: datetime | None, last_due: datetime | None) -> datetime | None:
    """Due when the N-th new label since the last run arrived, unless that time already fired."""
    if nth_label_at is None or (last_due is not None and nth_label_at <= last_due):
        return None
    return nth_label_at


def age_due(
    since: datetime | None, max_age: timedelta, last_due: datetime | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """Due at since + k * max_age (k >= 1): the latest such time passed, unless fired; and the next.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> due, upcoming = age_due(t, timedelta(days=7), None, t + timedelta(days=30))
    >>> (due - t).days, (upcoming - t).days  # 7, 14, 21 and 28 passed: 28 fires, 35 is next
    (28, 35)
    """
    if since is None:
        return None, None
    periods = max(0, int((now - since) / max_age))
    upcoming = since + (periods + 1) * max_age
    if periods < 1:
        return None, upcoming
    latest = since + periods * max_age
    return (latest if last_due is None or latest > last_due else None), upcoming


def schedule_event_id(model_name: str, due: Due) -> uuid.UUID:
    """The TrainingRequested event id of a due time: the same inputs, the same id."""
    due_at = due.due_at.astimezone(UTC).isoformat(timespec="microseconds")
    return uuid.uuid5(SCHEDULE_NAMESPACE, f"{model_name}/{due.trigger}/{due_at}")
