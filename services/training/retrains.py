"""Retraining on drift events: the policy's decision, the retrain that waits for labels, ops control.

A drift event is decided once (by event id, persisted). With `train_since_change`, the training window
starts at the drift's change point (the event's `window_start`), and the retrain waits until
`min_new_labels` labels have arrived since that point: right after a change there are too few rows of
the new world to learn from, and training on the old rows would teach the old world again. At most one
retrain waits (persisted, so a restart keeps it); a newer change point supersedes it, and it expires
after `label_wait_s` without enough labels. With `follow_up_labels`, a retrain since a change is
followed by one more on the same window once that many labels have come since the change: the first
is rushed on purpose (a few hundred examples of the new world), the follow-up consolidates.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from contracts.envelope import Event
from contracts.events import DriftDetected, TrainingRequested
from services.training.adapters.state import TrainingState
from services.training.domain.policy import GatePolicy
from services.training.domain.retraining import (
    Decision,
    RetrainState,
    change_point,
    decide_retrain,
    retrain_window,
)
from services.training.metrics import DRIFT_EVENTS

log = logging.getLogger(__name__)

Request = Callable[..., Awaitable[TrainingRequested]]
RACES = 5  # compare-and-replace attempts on the waiting retrain before giving up (logged)


class DriftRetrains:
    def __init__(
        self,
        state: TrainingState,
        policy: Callable[[], GatePolicy],
        request: Request,
        model_name: str,
        producer: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.state, self.policy, self.request = state, policy, request
        self.model_name, self.producer, self.clock = model_name, producer, clock
        self._lock = asyncio.Lock()
        self.requested = 0  # drift retrains requested by this process

    async def on_drift(self, event: DriftDetected) -> Decision:
        """Apply the retraining policy; a refusal is logged and counted, never an error."""
        if await asyncio.to_thread(self.state.decided, str(event.event_id)):
            log.info("drift event %s was decided before; skipped", event.event_id)
            return Decision(False, "duplicate", "redelivered drift event")
        async with self._lock:
            return await self._decide(event)

    async def on_labels(self, label_times: Sequence[datetime]) -> None:
        """New labels bring the waiting retrain closer: decide it when enough have come since its
        change point. The waiting retrain and its count are read from the state each batch, since
        instances that share it each store part of the labels; the one that takes it decides it."""
        pending = await asyncio.to_thread(self.state.pending_retrain)
        if pending is None:
            return
        since = datetime.fromisoformat(pending["since"])
        if not any(time >= since for time in label_times):
            return
        labels = await asyncio.to_thread(self.state.labels_since, since)
        waited = (self.clock() - datetime.fromisoformat(pending["waiting_since"])).total_seconds()
        if labels < pending["needed"] and waited <= pending["wait_s"]:
            return
        async with self._lock:
            if not await self._replace(pending, None):
                return  # decided or superseded meanwhile, here or by another instance
            taken, pending["labels"], asked = dict(pending), labels, self.requested
            try:
                if waited > pending["wait_s"]:
                    detail = f"{labels} labels since the change point after {waited:.0f} s of waiting"
                    await self._replace(None, pending.get("then"))
                    expired = Decision(False, "expired", detail)
                    await self._record(_decision_id(pending), pending["kind"], expired)
                    return
                cause = TrainingRequested if pending.get("evidence") else DriftDetected
                await self._decide(cause.model_validate_json(pending["event"]), pending)
            except BaseException:  # e.g. the request could not be published: it waits again, not lost
                if self.requested == asked:  # (once requested, putting it back would request it twice)
                    await asyncio.shield(self._replace(None, taken))
                raise

    async def on_inconclusive(self, request: TrainingRequested) -> Decision | None:
        """A drift retrain judged not_enough_evidence runs again on the same window once
        `evidence_labels_factor` times its labels since the change have come, at most `evidence_retries`
        times per change, within `label_wait_s` (a follow-up waiting meanwhile waits behind it)."""
        since = request.payload.window_start
        if request.payload.reason != "drift" or since is None:
            return None
        policy = await asyncio.to_thread(self.policy)
        decisions = await asyncio.to_thread(self.state.recent_decisions, 200)
        origin = next((d for d in decisions if d["request_id"] == str(request.event_id)), None)
        if origin is None:
            return None
        root = str(origin["event_id"]).split("/")[0]
        attempt = 1 + sum(str(d["event_id"]).startswith(f"{root}/evidence-") for d in decisions)
        if attempt > policy.evidence_retries:
            log.info(
                "drift event %s: not enough evidence after %d retries; the champion stays", root, attempt - 1
            )
            return Decision(False, "evidence_retries_spent", f"{attempt - 1} retries for more evidence")
        async with self._lock:
            labels = await asyncio.to_thread(self.state.labels_since, since)
            for _ in range(RACES):  # another instance may change the waiting retrain meanwhile
                displaced = await asyncio.to_thread(self.state.pending_retrain)
                if displaced is not None and displaced.get("event_id") != root:  # a newer change waits
                    detail = f"a newer change point waits (drift event {displaced['event_id']})"
                    superseded = Decision(False, "superseded", detail)
                    await self._record(f"{root}/evidence-{attempt}", origin["kind"], superseded)
                    return superseded
                then = displaced
                pending = {
                    "event_id": root, "decision_id": f"{root}/evidence-{attempt}", "kind": origin["kind"],
                    "event": request.model_dump_json(), "since": since.isoformat(), "labels": labels,
                    "needed": math.ceil(labels * policy.evidence_labels_factor), "follow_up": True,
                    "evidence": True, "waiting_since": self.clock().isoformat(),
                    "wait_s": policy.label_wait_s,
                    "then": then,
                }  # fmt: skip
                if await self._replace(displaced, pending):
                    break
            else:
                log.warning("drift event %s: the waiting retrain kept changing; no evidence retry", root)
                return None
        detail = f"not enough evidence with {labels} labels since the change: again at {pending['needed']}"
        decision = Decision(False, "waiting_for_evidence", detail)
        await self._record(pending["decision_id"], origin["kind"], decision)
        return decision

    async def _decide(self, event: Event[Any], waiting: dict[str, Any] | None = None) -> Decision:
        if waiting is not None and waiting.get("follow_up"):
            return await self._follow_up(event, waiting)
        assert isinstance(event, DriftDetected)
        policy, now = await asyncio.to_thread(self.policy), self.clock()
        since = change_point(event, policy)
        retrain_state = await asyncio.to_thread(self._retrain_state, now, since)
        decision = decide_retrain(event, retrain_state, policy, now)
        if waiting is not None and decision.reason == "waiting_for_labels":
            waiting["labels"] = retrain_state.new_labels  # (the policy asks more now): keep waiting
            await self._replace(None, waiting)
            return decision
        request_id = None
        if decision.go:
            window = (since, None) if since is not None else retrain_window(
                policy, await asyncio.to_thread(self.state.newest_label_time)
            )  # fmt: skip
            request_id = await self._ask(window, event)
        await self._update_pending(event, since, policy, retrain_state, decision, now)
        await self._record(str(event.event_id), event.payload.kind, decision, request_id)
        return decision

    async def _update_pending(
        self,
        event: DriftDetected,
        since: datetime | None,
        policy: GatePolicy,
        retrain_state: RetrainState,
        decision: Decision,
        now: datetime,
    ) -> None:
        """At most one retrain waits: a newer change point that goes or waits supersedes the older. The
        change is a compare-and-replace, tried again if another instance changed it meanwhile."""
        event_id = str(event.event_id)
        waits = decision.reason == "waiting_for_labels"
        follow_up = decision.go and policy.follow_up_labels is not None
        for _ in range(RACES):
            old = await asyncio.to_thread(self.state.pending_retrain)
            new: dict[str, Any] | None = old
            superseded = (
                old is not None
                and old["event_id"] != event_id
                and decision.reason in ("go", "waiting_for_labels")
            )
            if old is not None and (old["event_id"] == event_id or superseded):
                new = None  # decided at last (it went, or a later rule refused it), or superseded
            if since is not None and (waits or follow_up):
                new = {
                    "event_id": event_id, "kind": event.payload.kind, "event": event.model_dump_json(),
                    "since": since.isoformat(), "labels": retrain_state.new_labels,
                    "needed": policy.min_new_labels if waits else policy.follow_up_labels,
                    "follow_up": not waits, "waiting_since": now.isoformat(), "wait_s": policy.label_wait_s,
                }  # fmt: skip
            if new is old or await self._replace(old, new):
                if superseded and old is not None:
                    detail = f"superseded by drift event {event_id}"
                    await self._record(_decision_id(old), old["kind"], Decision(False, "superseded", detail))
                return
        log.warning("drift event %s: the waiting retrain kept changing under it; left as it is", event_id)

    async def _follow_up(self, event: Event[Any], waiting: dict[str, Any]) -> Decision:
        """The second retrain of one change (or a retry for more evidence), on the same window with more
        of the new world's labels. Part of the response to that drift: only a pause refuses it (not the
        cool-down)."""
        paused = (await asyncio.to_thread(self.state.pause_status))["paused"]
        decision = (
            Decision(False, "paused", "automatic retraining is paused by ops")
            if paused
            else Decision(True, "go", f"follow-up: {waiting['labels']} labels since the change point")
        )
        request_id = None
        if decision.go:
            window = (datetime.fromisoformat(waiting["since"]), None)
            request_id = await self._ask(window, event)
        await self._replace(None, waiting.get("then"))  # unless another instance set one meanwhile
        await self._record(_decision_id(waiting), waiting["kind"], decision, request_id)
        return decision

    async def _ask(self, window: tuple[datetime | None, datetime | None], cause: Event[Any]) -> str:
        """Request a drift retrain; counted, so that a failure after it never requests it again."""
        event = await self.request(self.producer, "drift", window, caused_by=cause)
        self.requested += 1
        return str(event.event_id)

    async def _replace(self, expected: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
        """Compare-and-replace the waiting retrain in the state the instances share."""
        return await asyncio.to_thread(self.state.replace_pending_retrain, expected, new)

    async def _load_pending(self) -> dict[str, Any] | None:
        """The waiting retrain, with its labels since the change point counted now."""
        pending = await asyncio.to_thread(self.state.pending_retrain)
        if pending is not None:
            since = datetime.fromisoformat(pending["since"])
            pending["labels"] = await asyncio.to_thread(self.state.labels_since, since)
        return pending

    async def _record(
        self, event_id: str, kind: str, decision: Decision, request_id: str | None = None
    ) -> None:
        await asyncio.to_thread(self.state.save_decision, event_id, self.clock(), kind, decision, request_id)
        DRIFT_EVENTS.labels(decision.reason).inc()
        log.info(
            "drift event %s (%s): %s (%s)",
            event_id,
            kind,
            "retrain requested" if decision.go else f"not retrained, {decision.reason}",
            decision.detail,
        )

    def _retrain_state(self, now: datetime, since: datetime | None) -> RetrainState:
        recent, last = self.state.retrains_since(now - timedelta(hours=1))
        return RetrainState(
            model_name=self.model_name,
            paused=bool(self.state.pause_status()["paused"]),
            new_labels=self.state.new_labels() if since is None else self.state.labels_since(since),
            last_retrain_at=last,
            retrains_last_hour=recent,
            since_change=since is not None,
        )

    async def set_paused(self, paused: bool, by: str, note: str | None = None) -> dict[str, Any]:
        """Pause or resume automatic retraining (drift and schedule); manual requests are not affected."""
        await asyncio.to_thread(self.state.set_paused, paused, by, self.clock(), note)
        log.info("automatic retraining %s by %s", "paused" if paused else "resumed", by)
        return await self.retraining_status()

    async def retraining_status(self, decisions: int = 20) -> dict[str, Any]:
        policy = await asyncio.to_thread(self.policy)
        fields = (
            "retrain_on_drift", "retrain_on_kinds", "min_new_labels", "retrain_cooldown_s",
            "max_retrains_per_hour", "drift_window_s", "train_since_change", "follow_up_labels",
            "label_wait_s",
        )  # fmt: skip
        pending = await self._load_pending()
        return (await asyncio.to_thread(self.state.pause_status)) | {
            "waiting": {k: v for k, v in pending.items() if k != "event"} if pending else None,
            "policy": policy.model_dump(include=set(fields)),
            "decisions": await asyncio.to_thread(self.state.recent_decisions, decisions),
        }


def _decision_id(pending: dict[str, Any]) -> str:
    """Decisions are kept by drift event id; a follow-up's (or an evidence retry's) under its own, next
    to the first's."""
    if "decision_id" in pending:
        return str(pending["decision_id"])
    return pending["event_id"] + ("/follow-up" if pending.get("follow_up") else "")
