"""A recommendation on a running canary: promote it, keep it running, or roll it back, from the
accuracy of its decisions and of the champion's on their labelled predictions.

The difference of the two accuracies (canary - champion) gets Newcombe's hybrid score interval (each
accuracy's Wilson interval, combined; good coverage on a few dozen rows, where the Wald interval is
too narrow). Entirely above zero, the canary is better: promote. Entirely below
zero: roll it back. Straddling zero: keep it running (more labels will tell). Below `min_labels`
labelled predictions on either side, nothing is said: not enough labels. It is a recommendation:
nothing is promoted or rolled back automatically.

>>> recommend(Counts(900, 1000), Counts(700, 1000)).action
'promote'
>>> recommend(Counts(10, 12), Counts(700, 1000)).action
'not_enough_labels'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from scipy.stats import norm

Action = Literal["promote", "keep", "roll_back", "not_enough_labels"]


@dataclass(frozen=True)
class Counts:
    correct: int
    labelled: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass(frozen=True)
class Recommendation:
    action: Action
    difference: float | None  # canary accuracy - champion accuracy
    low: float | None
    high: float | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "accuracy_difference": self.difference,
            "low": self.low,
            "high": self.high,
            "detail": self.detail,
        }


def wilson(counts: Counts, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    n, p = counts.labelled, counts.correct / counts.labelled
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def difference_interval(canary: Counts, champion: Counts, confidence: float) -> tuple[float, float, float]:
    """Newcombe's hybrid score interval of accuracy(canary) - accuracy(champion): (value, low, high)."""
    z = float(norm.ppf(0.5 + confidence / 2))
    p1, p2 = canary.correct / canary.labelled, champion.correct / champion.labelled
    (l1, u1), (l2, u2) = wilson(canary, z), wilson(champion, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def recommend(
    canary: Counts, champion: Counts, *, min_labels: int = 100, confidence: float = 0.95
) -> Recommendation:
    if min(canary.labelled, champion.labelled) < min_labels:
        detail = (
            f"not enough labels: canary {canary.labelled}, champion {champion.labelled} labelled "
            f"predictions (at least {min_labels} each)"
        )
        return Recommendation("not_enough_labels", None, None, None, detail)
    d, low, high = difference_interval(canary, champion, confidence)
    action: Action = "promote" if low > 0 else "roll_back" if high < 0 else "keep"
    said = {"promote": "surely better", "roll_back": "surely worse", "keep": "not distinguishable yet"}
    detail = (
        f"accuracy canary - champion {d:+.4f} [{low:+.4f}, {high:+.4f}] at {confidence:.0%} "
        f"(Newcombe hybrid score) on {canary.labelled} / {champion.labelled} labelled: {said[action]}"
    )
    return Recommendation(action, d, low, high, detail)
