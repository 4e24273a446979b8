"""The model being served, as one immutable value, and the slot that swaps it atomically.

A request reads `slot.champion` once and uses that `LoadedModel` throughout (features, scorer,
threshold, version), so a swap in the middle of a request cannot mix two versions. Swapping is one
reference assignment on the event loop: no lock, no request waits for a load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Literal

from contracts.common import Scalar
from contracts.model import Column, FeatureProfile, Kind, ModelCard
from services.serving.domain.canary import CanarySplit
from services.serving.domain.scoring import Scorer

Decision = Literal["approve", "decline"]
__all__ = ["Column", "Decision", "Kind", "LoadedModel", "ModelSlot", "decide"]


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
    card: ModelCard | None = None  # None only for models built in tests without one

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def profile(self) -> dict[str, FeatureProfile]:
        """What training saw per feature; empty for a legacy model registered without a card."""
        return self.card.profile if self.card is not None else {}

    def decide(self, score: float) -> Decision:
        return decide(score, self.threshold)

    def probability(self, score: float) -> float | None:
        """The calibrated P(bad) of a score, by the card's calibration (the same code every reader of
        the card uses); None when the card carries none. A couple of float operations."""
        calibration = self.card.calibration if self.card is not None else None
        if calibration is None:
            return None
        p = calibration.apply(score)
        return p if 0.0 <= p <= 1.0 else None  # NaN (a NaN score) is no probability

    def out_of_profile(self, row: Mapping[str, Scalar]) -> dict[str, str]:
        """Feature -> why its value lies outside what training saw (empty: inside, or no profile).

        The common case (every value inside) runs on plain tuples; the profile explains a miss."""
        found: dict[str, str] = {}
        for name, low, high, categories in self._bounds:
            value = row.get(name)
            if isinstance(value, str) and categories is not None:
                inside = value in categories
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                inside = low <= value <= high  # False for NaN
            else:
                continue
            if not inside:
                found[name] = self.profile[name].violation(value) or "outside the training profile"
        return found

    @cached_property
    def _bounds(self) -> tuple[tuple[str, float, float, frozenset[str] | None], ...]:
        """(name, lowest, highest, categories) per profiled feature, read from the card once."""
        inf = float("inf")
        return tuple(
            (
                name,
                -inf if p.minimum is None else p.minimum,
                inf if p.maximum is None else p.maximum,
                None if p.categories is None else frozenset(p.categories),
            )
            for name, p in self.profile.items()
        )


def decide(score: float, threshold: float) -> Decision:
    """The score is P(bad): at or above the threshold the application is declined.

    >>> decide(0.7, 0.5), decide(0.5, 0.5), decide(0.49, 0.5)
    ('decline', 'decline', 'approve')
    """
    return "decline" if score >= threshold else "approve"


class ModelSlot:
    """Holds the champion (and an optional shadow challenger, and an optional canary); each replaced
    whole, never mutated."""

    def __init__(self) -> None:
        self.champion: LoadedModel | None = None
        self.challenger: LoadedModel | None = None
        self.canary: tuple[LoadedModel, CanarySplit] | None = None  # one reference: model and split

    def set_canary(self, model: LoadedModel | None, share: float = 0.0) -> None:
        self.canary = None if model is None else (model, CanarySplit(model.version, share))

    def swap(self, model: LoadedModel, *, shadow: bool = False) -> LoadedModel | None:
        """Install `model`; returns the one it replaced."""
        if shadow:
            previous, self.challenger = self.challenger, model
        else:
            previous, self.champion = self.champion, model
        return previous
