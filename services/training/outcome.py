"""What one training run reports (`Outcome`), how long each of its phases took (`Timer`), and the
events that publish it (ModelTrained, then ModelPromoted or ModelRejected, caused by the request)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from contracts.events import (
    ModelPromoted,
    ModelPromotedPayload,
    ModelRejected,
    ModelRejectedPayload,
    ModelTrained,
    ModelTrainedPayload,
    TrainingRequested,
)
from services.training.domain.champions import Move
from services.training.domain.gate import Verdict

Status = Literal["promoted", "rejected"]


@dataclass
class Outcome:
    request_id: str
    status: Status
    reasons: list[str] = field(default_factory=list)
    run_id: str | None = None
    model_version: str | None = None
    previous_version: str | None = None
    verdict: Verdict | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)  # window, dataset version/hash, views, code

    def summary(self) -> dict[str, Any]:
        evidence = self.verdict.evidence.model_dump(mode="json") if self.verdict else None
        return {
            "request_id": self.request_id,
            "status": self.status,
            "reasons": self.reasons,
            "run_id": self.run_id,
            "model_version": self.model_version,
            "previous_version": self.previous_version,
            "metrics": self.metrics,
            "counts": self.counts,
            "timings_s": self.timings,
            "lineage": self.lineage,
            "evidence": evidence,
        }


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(time.perf_counter() - started, 4)


def trained_event(request: TrainingRequested, outcome: Outcome, model: str, producer: str) -> ModelTrained:
    lineage = outcome.lineage
    payload = ModelTrainedPayload(
        model_name=model,
        model_version=outcome.model_version or "",
        run_id=outcome.run_id or "",
        metrics=outcome.metrics,
        window_start=lineage["window_start"],
        window_end=lineage["window_end"],
        dataset_version=lineage["dataset_version"],
        dataset_sha256=lineage["dataset_sha256"],
        feature_views=[lineage["feature_views"]],
        code_version=lineage["code_version"],
        evidence=outcome.verdict.evidence if outcome.verdict else None,
    )
    return ModelTrained.create(payload, producer, caused_by=request)


def promoted_event(request: TrainingRequested, outcome: Outcome, model: str, producer: str) -> ModelPromoted:
    assert outcome.verdict and outcome.model_version and outcome.run_id
    payload = ModelPromotedPayload(
        model_name=model,
        model_version=outcome.model_version,
        run_id=outcome.run_id,
        previous_version=outcome.previous_version,
        evidence=outcome.verdict.evidence,
    )
    return ModelPromoted.create(payload, producer, caused_by=request)


def rejected_event(request: TrainingRequested, outcome: Outcome, model: str, producer: str) -> ModelRejected:
    payload = ModelRejectedPayload(
        model_name=model,
        model_version=outcome.model_version,
        run_id=outcome.run_id,
        reasons=outcome.reasons or ["rejected"],
        evidence=outcome.verdict.evidence if outcome.verdict else None,
    )
    return ModelRejected.create(payload, producer, caused_by=request)


def promotion_move(event: ModelPromoted) -> Move:
    """The champion history's row for a promotion (what a rollback reads)."""
    p = event.payload
    evidence = p.evidence.model_dump(mode="json")
    return Move(p.model_version, p.previous_version, "promotion", p.run_id, evidence, str(event.event_id))
