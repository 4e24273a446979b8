"""Scheduled retraining: a background task that checks the policy's `schedule:` every few seconds.

The decision is pure (domain/schedule.py); this runner gathers its inputs from the state (the last
due time of each trigger, the labels since the last run, when the champion became champion), and when
a trigger is due publishes a TrainingRequested with reason "schedule", its trigger and due time. The
request goes through the same gate and audit trail as any other.

Exactly once per due time, across restarts: the request's event id is derived from (model, trigger,
due time), and the request is saved in the state's outbox together with the due time's mark *before*
it is published (adapters/schedule_state.py). A crash before the save decides the same due time again;
a crash after it publishes the saved request at the next check, with the same id, which the training
run ledger trains once. Ops' pause (`POST /retraining/pause`) covers schedules: a due time that comes
while paused is skipped (marked `paused`), not made up on resume.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from contracts.envelope import Event
from contracts.events import ScheduledFor, TrainingRequested
from services.training.adapters.schedule_state import ScheduleStore
from services.training.adapters.state import TrainingState
from services.training.domain.manual_window import manual_window
from services.training.domain.policy import GatePolicy
from services.training.domain.schedule import (
    Due,
    Schedule,
    ScheduleDecision,
    ScheduleInputs,
    decide_schedule,
    schedule_event_id,
)
from services.training.metrics import SCHEDULED

log = logging.getLogger(__name__)

Prepare = Callable[..., Awaitable[TrainingRequested]]
Publish = Callable[[Event[Any], str], Awaitable[None]]


class ScheduledRetrains:
    def __init__(
        self,
        state: TrainingState,
        policy: Callable[[], GatePolicy],
        prepare: Prepare,
        publish: Publish,
        topic: str,
        model_name: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.state, self.policy, self.prepare, self.publish = state, policy, prepare, publish
        self.topic, self.model_name, self.clock = topic, model_name, clock
        self.store = ScheduleStore(state.database, model_name)
        self._lock = asyncio.Lock()

    async def run(self, every_s: float) -> None:
        """The background task: check, sleep, again. A failed check (Kafka away, a broken policy file)
        is logged and tried again at the next one."""
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("scheduled retraining check failed; trying again in %.1f s", every_s)
            await asyncio.sleep(every_s)

    async def check(self) -> ScheduleDecision:
        """Publish what the outbox holds, then decide; a due time fires once (or is skipped if paused)."""
        async with self._lock:
            await self._flush()
            policy, now = await asyncio.to_thread(self.policy), self.clock()
            if not policy.schedule.on:  # the default: no query, no write
                return ScheduleDecision("off")
            inputs = await asyncio.to_thread(self._inputs, policy.schedule, now)
            decision = decide_schedule(policy.schedule, inputs, now)
            if decision.reason in ("off", "not_due"):
                return decision
            fires = decision.fires
            event = await self._request(fires) if fires else None
            event_id, body = (str(event.event_id), event.model_dump_json()) if event else (None, None)
            outcome = "fired" if event else "paused"
            await asyncio.to_thread(self.store.save, decision.due, outcome, now, event_id, body)
            for i, due in enumerate(decision.due):
                SCHEDULED.labels(due.trigger, outcome if i == 0 or not event else "covered").inc()
            log.info(
                "schedule: %s due at %s %s (%s)",
                decision.due[0].trigger,
                decision.due[0].due_at.isoformat(),
                f"requested training {event_id}" if event else "skipped: retraining is paused by ops",
                ", ".join(d.trigger for d in decision.due),
            )
            await self._flush()
            return decision

    async def _request(self, due: Due) -> TrainingRequested:
        """Like `POST /train` without a window: from the last concept change acted on (if any)."""
        change = await asyncio.to_thread(self.state.last_change_point)
        window = manual_window(None, None, change)
        return await self.prepare(
            f"schedule:{due.trigger}",
            "schedule",
            (window.start, window.end),
            event_id=schedule_event_id(self.model_name, due),
            schedule=ScheduledFor(trigger=due.trigger, due_at=due.due_at),
        )

    async def _flush(self) -> None:
        for event_id, body in await asyncio.to_thread(self.store.unpublished):
            await self.publish(TrainingRequested.model_validate_json(body), self.topic)
            await asyncio.to_thread(self.store.mark_published, event_id)

    def _inputs(self, schedule: Schedule, now: datetime) -> ScheduleInputs:
        marks = self.store.marks()
        every = schedule.every_labels
        labels, nth_label_at = self.store.labels_since_run(every) if every else (0, None)
        return ScheduleInputs(
            armed_at=self.store.armed_at(schedule.cron, now),
            last_due={t: datetime.fromisoformat(m["due_at"]) for t, m in marks.items()},
            labels_since_run=labels,
            nth_label_at=nth_label_at,
            champion_since=self.store.champion_since() if schedule.max_champion_age else None,
            paused=bool(self.state.pause_status()["paused"]),
        )

    async def status(self) -> dict[str, Any]:
        """For `GET /retraining`: the schedule, each trigger's next due time and last mark."""
        policy, now = await asyncio.to_thread(self.policy), self.clock()
        schedule = policy.schedule
        inputs = await asyncio.to_thread(self._inputs, schedule, now)
        decision = decide_schedule(schedule, inputs, now)
        marks = await asyncio.to_thread(self.store.marks)
        age = schedule.max_champion_age
        triggers: dict[str, dict[str, Any]] = {
            trigger: {
                "next_due": _iso(decision.next_due.get(trigger)),
                "due_now": any(d.trigger == trigger for d in decision.due),
                "last": marks.get(trigger),
            }
            for trigger in decision.next_due
        }
        if "labels" in triggers:
            triggers["labels"] |= {
                "labels_since_last_run": inputs.labels_since_run,
                "needed": schedule.every_labels,
            }
        if "age" in triggers:
            triggers["age"] |= {"champion_since": _iso(inputs.champion_since)}
        return {
            "on": schedule.on,
            "paused": inputs.paused,
            "cron": schedule.cron,
            "every_labels": schedule.every_labels,
            "max_champion_age_s": age.total_seconds() if age else None,
            "triggers": triggers,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
