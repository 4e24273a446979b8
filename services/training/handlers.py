"""Use cases of the training service, called by the Kafka subscribers and the HTTP routes alike.

Training runs in a worker thread (the event loop keeps consuming labels and answering HTTP), one run
at a time. A run's outcome is published as ModelTrained (when a candidate was registered) followed by
ModelPromoted or ModelRejected, all caused by the TrainingRequested; it is then saved under the
request's event id, so a redelivered request is skipped. A crash after the alias moved and before the
save repeats the run on redelivery (a second candidate, gated again): at-least-once, never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from contracts.envelope import Event
from contracts.events import (
    DriftDetected,
    LabelObserved,
    ModelPromoted,
    ModelPromotedPayload,
    ModelRejected,
    ModelRejectedPayload,
    ModelTrained,
    ModelTrainedPayload,
    TrainingRequested,
    TrainingRequestedPayload,
)
from services.training.adapters.state import TrainingState
from services.training.domain.dataset import label_value
from services.training.domain.policy import GatePolicy
from services.training.domain.retraining import Decision
from services.training.metrics import LABELS, PHASE_SECONDS, RUNS
from services.training.retrains import DriftRetrains
from services.training.trainer import Outcome, Trainer

log = logging.getLogger(__name__)

Reason = Literal["manual", "drift", "schedule"]
Publish = Callable[[Event[Any], str], Awaitable[None]]


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
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    retrains: DriftRetrains = field(init=False)

    def __post_init__(self) -> None:
        self.retrains = DriftRetrains(
            self.state, self.policy, self.request, self.model_name, self.producer, lambda: self.clock()
        )

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
        stored = await asyncio.to_thread(self.state.add_labels, rows)
        LABELS.labels("stored").inc(sum(stored))
        LABELS.labels("duplicate").inc(len(stored) - sum(stored))
        for (event, _), new in zip(usable, stored, strict=True):
            if new:
                await self.retrains.on_label(event.payload.event_time)

    async def request(
        self,
        requested_by: str,
        reason: Reason = "manual",
        window: tuple[datetime | None, datetime | None] = (None, None),
        caused_by: Event[Any] | None = None,
    ) -> TrainingRequested:
        """Publish a TrainingRequested (the HTTP route, the CLI and drift use this)."""
        payload = TrainingRequestedPayload(
            model_name=self.model_name,
            reason=reason,
            requested_by=requested_by,
            trigger_event_id=str(caused_by.event_id) if caused_by else None,
            window_start=window[0],
            window_end=window[1],
        )
        event = TrainingRequested.create(payload, self.producer, caused_by=caused_by)
        await self.publish(event, self.topics.requests)
        return event

    async def on_drift(self, event: DriftDetected) -> Decision:
        return await self.retrains.on_drift(event)

    async def set_paused(self, paused: bool, by: str, note: str | None = None) -> dict[str, Any]:
        return await self.retrains.set_paused(paused, by, note)

    async def retraining_status(self, decisions: int = 20) -> dict[str, Any]:
        return await self.retrains.retraining_status(decisions)

    async def on_training_requested(self, event: TrainingRequested) -> Outcome | None:
        if event.payload.model_name != self.model_name:
            log.info("ignored a training request for model %r", event.payload.model_name)
            return None
        async with self._lock:
            if await asyncio.to_thread(self.state.run_done, str(event.event_id)):
                log.info("training request %s was handled before; skipped", event.event_id)
                return None
            try:
                outcome = await asyncio.to_thread(self.trainer.run, event)
            except Exception as exc:  # a failed run is reported, not retried: ops may ask again
                log.exception("training run failed")
                RUNS.labels("failed").inc()
                outcome = Outcome(
                    str(event.event_id), "rejected", [f"training failed: {type(exc).__name__}: {exc}"]
                )
            await self._publish(event, outcome)
            await asyncio.to_thread(
                self.state.save_run, str(event.event_id), outcome.status, outcome.summary()
            )
        RUNS.labels(outcome.status).inc()
        for phase, seconds in outcome.timings.items():
            PHASE_SECONDS.labels(phase).observe(seconds)
        log.info("training %s: %s", outcome.status, outcome.reasons or outcome.model_version)
        return outcome

    async def _publish(self, request: TrainingRequested, outcome: Outcome) -> None:
        if outcome.run_id and outcome.model_version:
            await self.publish(self._trained(request, outcome), self.topics.trained)
        if outcome.status == "promoted":
            assert outcome.verdict and outcome.model_version and outcome.run_id
            promoted = ModelPromotedPayload(
                model_name=self.model_name,
                model_version=outcome.model_version,
                run_id=outcome.run_id,
                previous_version=outcome.previous_version,
                evidence=outcome.verdict.evidence,
            )
            await self.publish(
                ModelPromoted.create(promoted, self.producer, caused_by=request), self.topics.promoted
            )
            return
        rejected = ModelRejectedPayload(
            model_name=self.model_name,
            model_version=outcome.model_version,
            run_id=outcome.run_id,
            reasons=outcome.reasons or ["rejected"],
            evidence=outcome.verdict.evidence if outcome.verdict else None,
        )
        await self.publish(
            ModelRejected.create(rejected, self.producer, caused_by=request), self.topics.rejected
        )

    def _trained(self, request: TrainingRequested, outcome: Outcome) -> ModelTrained:
        lineage = outcome.lineage
        payload = ModelTrainedPayload(
            model_name=self.model_name,
            model_version=outcome.model_version or "",
            run_id=outcome.run_id or "",
            metrics=outcome.metrics,
            window_start=lineage["window_start"],
            window_end=lineage["window_end"],
            dataset_version=lineage["dataset_version"],
            dataset_sha256=lineage["dataset_sha256"],
            feature_views=[lineage["feature_views"]],
            code_version=lineage["code_version"],
        )
        return ModelTrained.create(payload, self.producer, caused_by=request)
