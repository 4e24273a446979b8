"""What the closed loop recorded (infra/loop.py drives it): each served prediction, the events ops
saw on the bus placed on the stream, and the counts; and the questions the figures and the loop's
end ask of them (which champion, how accurate, whether a retrain is still under way)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Served:
    row: int
    drifted: bool
    version: str
    latency_ms: float
    at: float  # monotonic time of the answer
    prediction_id: str = ""
    correct: bool | None = None  # known once the label came


@dataclass
class Mark:
    """Something ops would see on the bus, placed on the stream (the rows sent by then)."""

    at: float
    row: int
    kind: str  # drift | requested | promoted | rejected
    text: str
    version: str | None = None
    link: str | None = None  # e.g. the Evidently report of a drift event


@dataclass
class LoopState:
    sent: int = 0
    clean: int = 0
    rejected: int = 0
    labelled: int = 0
    drifted_labelled: int = 0
    not_served: int = 0
    served: list[Served] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    first_version: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    drift_sent_at: float | None = None  # the first drifted record left the producer
    new_version_served_at: float | None = None
    done: bool = False
    # LoopRun.closed() when the stream ended: a new champion serves, nothing more is coming and the
    # final champion's recovery is measured. False when `timeout_s` cut the loop short.
    closed: bool = False

    def versions(self) -> list[str]:
        return list(dict.fromkeys(s.version for s in self.served))

    def accuracy(self, keep: Callable[[Served], bool]) -> tuple[float | None, int]:
        known = [s for s in self.served if s.correct is not None and keep(s)]
        return (sum(bool(s.correct) for s in known) / len(known) if known else None), len(known)

    def promoted(self) -> list[str]:
        """Versions promoted during the loop, in order (the drift's retrain, then any follow-up)."""
        first = self.first_version
        return [m.version for m in self.marks if m.kind == "promoted" and m.version and m.version != first]

    def new_champion(self) -> str | None:
        promoted = self.promoted()
        return promoted[0] if promoted else None

    def final_champion(self) -> str | None:
        promoted = self.promoted()
        return promoted[-1] if promoted else None

    def recovered_rows(self) -> int:
        final = self.final_champion()
        return sum(1 for s in self.served if s.version == final and s.correct is not None) if final else 0

    def training_outstanding(self) -> bool:
        requests = sum(m.kind == "requested" for m in self.marks)
        return requests > sum(m.kind in ("promoted", "rejected") for m in self.marks)
