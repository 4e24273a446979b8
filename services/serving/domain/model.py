"""The model being served, as one immutable value, and the slot that swaps it atomically.

A request reads `slot.champion` once and uses that `LoadedModel` throughout (features, scorer,
threshold, version), so a swap in the middle of a request cannot mix two versions. Swapping is one
reference assignment on the event loop: no lock, no request waits for a load.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.serving.domain.scoring import Scorer

Kind = Literal["int", "float", "str"]
Decision = Literal["approve", "decline"]


@dataclass(frozen=True)
class Column:
    """One model input: its name and the type the model signature declares."""

    name: str
    kind: Kind


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str
    columns: tuple[Column, ...]
    threshold: float
    scorer: Scorer
    loaded_at: datetime
    load_seconds: float

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def decide(self, score: float) -> Decision:
        return decide(score, self.threshold)


def decide(score: float, threshold: float) -> Decision:
    """The score is P(bad): at or above the threshold the application is declined.

    >>> decide(0.7, 0.5), decide(0.5, 0.5), decide(0.49, 0.5)
    ('decline', 'decline', 'approve')
    """
    return "decline" if score >= threshold else "approve"


class ModelSlot:
    """Holds the champion (and an optional shadow challenger); replaced whole, never mutated."""

    def __init__(self) -> None:
        self.champion: LoadedModel | None = None
        self.challenger: LoadedModel | None = None

    def swap(self, model: LoadedModel, *, shadow: bool = False) -> LoadedModel | None:
        """Install `model`; returns the one it replaced."""
        if shadow:
            previous, self.challenger = self.challenger, model
        else:
            previous, self.champion = self.champion, model
        return previous
