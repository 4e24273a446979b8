"""What one training run reports (`Outcome`), and how long each of its phases took (`Timer`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

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
