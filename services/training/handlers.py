"""Use cases of the training service, called by the Kafka subscribers and the HTTP routes alike.

Training runs in a worker thread (the event loop keeps consuming labels and answering HTTP), one run
at a time. A run's outcome is published as ModelTrained (when a candidate was registered) followed by
ModelPromoted or ModelRejected, all caused by the TrainingRequested; it is then saved under the
request's event id, so a redelivered request is skipped. A crash after the alias moved and before the
save repeats the run on redelivery (a second candidate, gated again): at-least-once, never lost.

Several instances share the state (one SQLite file on one machine) and read requests in one group; a
run claim with a lease (run_claim.py) makes one of them run a request that two read around a
rebalance, and lets the other take the run over when the claimer dies mid-run.

Every request carries the labels topic's end offsets (its label watermark); a run first waits, at most
`watermark_wait_s`, until the labels consumer has stored every label up to them, so what a run learns
from does not depend on how far the consumer happened to be (the run's lineage says whether the
watermark was reached). A manual request without a window starts at the last concept change a drift
retrain acted on (domain/manual_window.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from contracts.envelope import Event
from contracts.events import (
    DriftDetected,
    LabelObserved,
    ScheduledFor,
    TrainingRequested,
    TrainingRequestedPayload,
)
from servicekit.watermark import CatchUp, ConsumedOffsets, Offsets
from services.training.adapters.champions import ChampionHistory
from services.training.adapters.run_claims import RunClaims
from services.training.adapters.state import TrainingState
from services.training.domain.dataset import label_value
from services.training.domain.manual_window import ChangePoint, ManualWindow, manual_window
from services.training.domain.policy import GatePolicy
from services.training.domain.retraining import Decision
from services.training.metrics import LABELS, PHASE_SECONDS, RUNS
from services.training.outcome import promoted_event, promotion_move, rejected_event, trained_event
from services.training.retrains import DriftRetrains
from services.training.run_claim import claimed_run, instance_id
from services.training.schedules import ScheduledRetrains
from services.training.trainer import Outcome, Trainer

log = logging.getLogger(__name__)

Reason = Literal["manual", "drift", "schedule"]
Publish = Callable[[Event[Any], str], Awaitable[None]]
Watermark = Callable[[], Awaitable[Offsets]]


@dataclass(frozen=True)
class Topics:
    requests: str
    trained: str
    promoted: str
    rejected: str


@dataclass
class TrainingService:
    trainer: Trainer
    state: TrainingState
    publish: Publish
    topics: Topics
    model_name: str
    dataset: str
    policy: Callable[[], GatePolicy]
    producer: str = "training"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    label_watermark: Watermark | None = None  # the labels topic's end offsets; None: runs do not wait
    labels_consumed: ConsumedOffsets = field(default_factory=ConsumedOffsets)
    watermark_wait_s: float = 120.0
    instance: str = field(default_factory=instance_id)  # names this process's run claims
    claim_lease_s: float = 60.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    retrains: DriftRetrains = field(init=False)
    schedules: ScheduledRetrains = field(init=False)
    history: ChampionHistory = field(init=False)
    claims: RunClaims = field(init=False)

    def __post_init__(self) -> None:
        self.history = ChampionHistory(self.state.database, self.model_name)
        self.claims = RunClaims(self.state.database)
        self.trainer.may_promote = lambda request_id: self.claims.renew(
            request_id, self.instance, self.claim_lease_s
        )  # the fence, at the alias too
        self.retrains = DriftRetrains(
            self.state, self.policy, self.request, self.model_name, self.producer, lambda: self.clock()
        )
        self.schedules = ScheduledRetrains(
            self.state, self.policy, self.prepare, self.publish, self.topics.requests, self.model_name,
            lambda: self.clock(),
        )  # fmt: skip

    async def on_label(self, event: LabelObserved) -> None:
        await self.on_labels([event])

    async def on_labels(self, events: list[LabelObserved]) -> None:
        """A batch of labels: stored in one transaction; each new one brings a waiting retrain closer."""
        usable: list[tuple[LabelObserved, int]] = []
        for event in events:
            value = label_value(event.payload.label)
            if event.payload.dataset != self.dataset or value is None:
                LABELS.labels("ignored").inc()
                log.warning("ignored a label (dataset %r or value not good/bad)", event.payload.dataset)
                continue
            usable.append((event, value))
        if not usable:
            return
        rows = [(str(e.event_id), e.payload.entity_id, v, e.payload.event_time) for e, v in usable]
        sources = [e.payload.source for e, _ in usable]
        stored = await asyncio.to_thread(self.state.add_labels, rows, sources)
        LABELS.labels("stored").inc(sum(stored))
        LABELS.labels("duplicate").inc(len(stored) - sum(stored))
        fresh = [event.payload.event_time for (event, _), new in zip(usable, stored, strict=True) if new]
        if fresh:
            await self.retrains.on_labels(fresh)

    async def request(
        self,
        requested_by: str,
        reason: Reason = "manual",
        window: tuple[datetime | None, datetime | None] = (None, None),
        caused_by: Event[Any] | None = None,
    ) -> TrainingRequested:
        """Publish a TrainingRequested with the label watermark of now (the HTTP route and drift use
        this). A drift retrain from a change point makes that change the last one acted on."""
        event = await self.prepare(requested_by, reason, window, caused_by)
        await self.publish(event, self.topics.requests)
        since_change = isinstance(caused_by, DriftDetected) and caused_by.payload.window_start == window[0]
        if since_change and window[0] is not None:  # (not a retrain on the last N seconds of labels)
            change = ChangePoint(window[0], str(caused_by.event_id) if caused_by else "")
            await asyncio.to_thread(self.state.save_change_point, change)
        return event

    async def prepare(
        self,
        requested_by: str,
        reason: Reason,
        window: tuple[datetime | None, datetime | None],
        caused_by: Event[Any] | None = None,
        *,
        event_id: UUID | None = None,
        schedule: ScheduledFor | None = None,
    ) -> TrainingRequested:
        """The TrainingRequested to publish, with the label watermark of now; a scheduled one passes
        the event id derived from its due time."""
        watermark = await self._watermark()
        payload = TrainingRequestedPayload(
            model_name=self.model_name,
            reason=reason,
            requested_by=requested_by,
            trigger_event_id=str(caused_by.event_id) if caused_by else None,
            window_start=window[0],
            window_end=window[1],
            labels_watermark=_by_partition_name(watermark),
            schedule=schedule,
        )
        event = TrainingRequested.create(payload, self.producer, caused_by=caused_by)
        if event_id is not None:  # a root event names its flow after its own (derived) event id
            root = {} if caused_by else {"correlation_id": str(event_id)}
            event = event.model_copy(update={"event_id": event_id} | root)
        return event

    async def request_manual(
        self,
        requested_by: str,
        reason: Reason,
        window: tuple[datetime | None, datetime | None],
        ignore_change_points: bool = False,
    ) -> tuple[TrainingRequested, ManualWindow]:
        """A person's request: without a window it starts at the last concept change acted on."""
        change = await asyncio.to_thread(self.state.last_change_point)
        chosen = manual_window(window[0], window[1], change, ignore_change_points)
        event = await self.request(requested_by, reason, (chosen.start, chosen.end))
        return event, chosen

    async def _watermark(self) -> Offsets | None:
        if self.label_watermark is None:
            return None
        try:
            return await self.label_watermark()
        except Exception as exc:  # asked anyway: the run will say it had no watermark to wait for
            log.warning("no label watermark for this request: %s: %s", type(exc).__name__, exc)
            return None

    async def catch_up(self, request: TrainingRequested) -> CatchUp | None:
        """Wait until the labels up to the request's watermark are stored (bounded); None: no watermark."""
        if request.payload.labels_watermark is None:
            return None
        given = request.payload.labels_watermark.items()
        watermark = {int(p): o for p, o in given if p.isascii() and p.isdigit()}  # others name no partition
        caught = await self.labels_consumed.wait_for(watermark, self.watermark_wait_s)
        if not caught.reached:
            log.warning(
                "label watermark not reached after %.0f s (%d partitions short): training goes ahead",
                caught.waited_s,
                len(caught.short),
            )
        return caught

    async def on_drift(self, event: DriftDetected) -> Decision:
        return await self.retrains.on_drift(event)

    async def set_paused(self, paused: bool, by: str, note: str | None = None) -> dict[str, Any]:
        return await self.retrains.set_paused(paused, by, note)

    async def retraining_status(self, decisions: int = 20) -> dict[str, Any]:
        status = await self.retrains.retraining_status(decisions)
        return status | {"schedule": await self.schedules.status()}

    async def on_training_requested(self, event: TrainingRequested) -> Outcome | None:
        if event.payload.model_name != self.model_name:
            log.info("ignored a training request for model %r", event.payload.model_name)
            return None
        request_id = str(event.event_id)
        claim = claimed_run(self.claims, request_id, self.instance, self.claim_lease_s)
        async with self._lock, claim as ours:  # one run per request, whichever instance reads it
            if not ours:
                log.info("training request %s was handled before; skipped", event.event_id)
                return None
            outcome = await self._run(event)
        if outcome is None:
            return None  # the claim was lost to another instance, which decides the request
        if outcome.verdict is not None and outcome.verdict.outcome == "not_enough_evidence":
            await self.retrains.on_inconclusive(event)  # a drift retrain waits for more labels, bounded
        RUNS.labels(outcome.status).inc()
        for phase, seconds in outcome.timings.items():
            PHASE_SECONDS.labels(phase).observe(seconds)
        log.info("training %s: %s", outcome.status, outcome.reasons or outcome.model_version)
        return outcome

    async def _run(self, event: TrainingRequested) -> Outcome | None:
        """Run, publish and save the outcome, fenced: nothing is published or saved by an instance
        that no longer holds the request's claim (it expired while this one stalled)."""
        caught = await self.catch_up(event)
        try:
            outcome = await asyncio.to_thread(self.trainer.run, event)
        except Exception as exc:  # a failed run is reported, not retried: ops may ask again
            log.exception("training run failed")
            RUNS.labels("failed").inc()
            outcome = Outcome(
                str(event.event_id), "rejected", [f"training failed: {type(exc).__name__}: {exc}"]
            )
        outcome.lineage["labels_watermark"] = caught.summary() if caught else {"watermark": None}
        request_id = str(event.event_id)
        if not await asyncio.to_thread(self.claims.renew, request_id, self.instance, self.claim_lease_s):
            log.error(
                "training request %s: claim lost before publishing; its new holder decides it", request_id
            )
            return None
        await self._publish(event, outcome)
        await asyncio.to_thread(self.state.save_run, str(event.event_id), outcome.status, outcome.summary())
        return outcome

    async def _publish(self, request: TrainingRequested, outcome: Outcome) -> None:
        if outcome.run_id and outcome.model_version:
            trained = trained_event(request, outcome, self.model_name, self.producer)
            await self.publish(trained, self.topics.trained)
        if outcome.status == "promoted":
            event = promoted_event(request, outcome, self.model_name, self.producer)
            await asyncio.to_thread(self.history.record, promotion_move(event))  # what a rollback reads
            await self.publish(event, self.topics.promoted)
            return
        rejected = rejected_event(request, outcome, self.model_name, self.producer)
        await self.publish(rejected, self.topics.rejected)


def _by_partition_name(offsets: Offsets | None) -> dict[str, int] | None:
    """The contract's form: partition numbers as strings (JSON object keys)."""
    return None if offsets is None else {str(p): o for p, o in sorted(offsets.items())}
