"""Online model quality per model version, from the label join: how good the served model is on the
last labelled predictions, for /metrics (and so Grafana), /detectors and `mlops watch`.

A rolling window of the last `size` labelled predictions of each (model, version) gives:
- accuracy of the decisions;
- AUC of the scores (Mann-Whitney with ties halved; none while the window holds one class only);
- Brier score, and the expected calibration error over 10 equal-width score bins (the share of
  predictions in a bin times |mean score - share of positives| in it, summed).

Each measure comes with the number of labelled predictions it stands on: on a few dozen rows an
accuracy swings by ten points, so the gauge `..._labelled` belongs on the same panel.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

BINS = 10


@dataclass
class RollingQuality:
    size: int = 500
    scores: deque[float] = field(init=False)
    truths: deque[bool] = field(init=False)
    decisions: deque[bool] = field(init=False)

    def __post_init__(self) -> None:
        self.scores, self.truths, self.decisions = (deque(maxlen=self.size) for _ in range(3))

    def add(self, score: float, truth: bool, decided_positive: bool) -> None:
        self.scores.append(float(score))
        self.truths.append(bool(truth))
        self.decisions.append(bool(decided_positive))

    def counts(self) -> tuple[int, int]:
        """(correct decisions, labelled predictions) in the window."""
        return sum(d == t for d, t in zip(self.decisions, self.truths, strict=True)), len(self.truths)

    def measures(self) -> dict[str, float | None]:
        """`labelled`, `accuracy`, `auc`, `brier`, `calibration_error` (None where undefined)."""
        n = len(self.scores)
        if n == 0:
            return {"labelled": 0.0, "accuracy": None, "auc": None, "brier": None, "calibration_error": None}
        score, truth = np.fromiter(self.scores, float, n), np.fromiter(self.truths, bool, n)
        decided = np.fromiter(self.decisions, bool, n)
        return {
            "labelled": float(n),
            "accuracy": float(np.mean(decided == truth)),
            "auc": auc(score, truth),
            "brier": float(np.mean((score - truth) ** 2)),
            "calibration_error": calibration_error(score, truth),
        }


def auc(score: np.ndarray, truth: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative), ties counting half; None with one class only."""
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return None
    rank_sum = rankdata(score)[truth].sum()  # tied scores share their mean rank
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def calibration_error(score: np.ndarray, truth: np.ndarray) -> float:
    """Expected calibration error over `BINS` equal-width bins of the score."""
    bins = np.minimum((score * BINS).astype(int), BINS - 1)
    error = 0.0
    for b in np.unique(bins):
        members = bins == b
        error += members.mean() * abs(score[members].mean() - truth[members].mean())
    return float(error)
