"""Performance estimated before the labels arrive: confidence-based performance estimation (CBPE).

In credit the truth (did the applicant repay?) comes months after the decision, so the label-based
monitors sit idle. CBPE (the method of NannyML's `CBPE`, Kivimaki et al.) reads the expected confusion
matrix off calibrated probabilities: a served prediction with P(positive) = p that was decided
positive is right with probability p, one decided negative with probability 1 - p. Summed over a
window of served predictions this gives, with no label at all:
- the expected accuracy of the decisions;
- the expected ROC AUC (expected true and false positives at every cut-off of the ranked scores);
- the expected cost per decision, with the German credit cost matrix by default: approving an
  applicant who defaults costs 5, declining one who would have repaid costs 1.

It holds while the model stays calibrated on the shifted inputs: covariate shift is fine (that is what
it estimates), a change of P(label | inputs) (concept drift) is invisible to it. So each window's
estimate is scored against the labels when they arrive (`Comparison`): under the estimator's own
assumption the realised number of correct decisions is a sum of independent Bernoulli(q_i), so
z = (correct - sum q) / sqrt(sum q(1-q)) is about standard normal; windows that keep missing by
more than `miss_z` mean the assumption broke, and `suspect` says so.

Uncertainty: an estimate carries `accuracy_se`, the standard error of the window's mean from the
covariate sample (sd of q over the window / sqrt(n)). A drop against the version's first window
counts only when it passes `drop_limit` AND is `drop_z` standard errors clear of zero.

Everything here is plain Python and numpy on values: the watch feeds it, the store pickles it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Costs:
    """Cost of each wrong decision, per decision (the German credit data's 5:1 cost matrix)."""

    false_approval: float = 5.0  # approved, then defaulted
    false_decline: float = 1.0  # declined, would have repaid


def expected_auc(probability: np.ndarray) -> float | None:
    """ROC AUC expected from calibrated probabilities alone (CBPE): at each cut-off of the ranked
    scores the expected true positives are the sum of p above it, the false positives the sum of
    1 - p; the area under those expected rates. None when the window expects one class only."""
    p = np.asarray(probability, dtype=float)
    positives, negatives = p.sum(), (1 - p).sum()
    if p.size < 2 or positives <= 1e-12 or negatives <= 1e-12:
        return None
    order = np.argsort(-p, kind="stable")
    ranked = p[order]
    # Tied scores are one cut-off: keep the last index of each run of equal values.
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    tpr = np.r_[0.0, np.cumsum(ranked)[last_of_tie] / positives]
    fpr = np.r_[0.0, np.cumsum(1 - ranked)[last_of_tie] / negatives]
    return float(np.trapezoid(tpr, fpr))


def realised_auc(score: np.ndarray, truth: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative), ties half; None with one class only."""
    from scipy.stats import rankdata

    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return None
    rank_sum = rankdata(score)[truth].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def correct_probability(probability: np.ndarray, decided_positive: np.ndarray) -> np.ndarray:
    """P(the decision is right) per prediction: p when decided positive, 1 - p otherwise."""
    return np.where(decided_positive, probability, 1 - probability)


def expected_cost(probability: np.ndarray, decided_positive: np.ndarray, costs: Costs) -> float:
    """Expected cost per decision: approvals that default (p of each approval) and declines that
    would have repaid (1 - p of each decline). The positive class is the default ("bad")."""
    approved = ~decided_positive
    total = costs.false_approval * probability[approved].sum()
    total += costs.false_decline * (1 - probability[decided_positive]).sum()
    return float(total / max(1, probability.size))


def realised_cost(truth: np.ndarray, decided_positive: np.ndarray, costs: Costs) -> float:
    approved = ~decided_positive
    total = costs.false_approval * (approved & truth).sum()
    total += costs.false_decline * (decided_positive & ~truth).sum()
    return float(total / max(1, truth.size))


@dataclass(frozen=True)
class Estimate:
    """One window's estimate from its served predictions."""

    rows: int
    accuracy: float
    accuracy_se: float  # standard error of the window mean, from the covariate sample
    auc: float | None
    cost: float
    approval_rate: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accuracy": self.accuracy,
            "accuracy_se": self.accuracy_se,
            "auc": self.auc,
            "cost": self.cost,
            "approval_rate": self.approval_rate,
        }


def estimate(probability: np.ndarray, decided_positive: np.ndarray, costs: Costs) -> Estimate:
    p, positive = np.asarray(probability, dtype=float), np.asarray(decided_positive, dtype=bool)
    q = correct_probability(p, positive)
    n = p.size
    return Estimate(
        rows=n,
        accuracy=float(q.mean()) if n else float("nan"),
        accuracy_se=float(q.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf"),
        auc=expected_auc(p),
        cost=expected_cost(p, positive, costs),
        approval_rate=float((~positive).mean()) if n else float("nan"),
    )


@dataclass(frozen=True)
class Comparison:
    """A window's estimate against its labels, on the labelled predictions only (so a window whose
    labels come in part is compared like with like)."""

    labelled: int
    realised_accuracy: float
    estimated_accuracy: float
    gap: float  # realised - estimated
    z: float  # the gap in standard deviations of the realised count under the estimator's assumption
    realised_auc: float | None
    estimated_auc: float | None
    realised_cost: float
    estimated_cost: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled,
            "realised_accuracy": self.realised_accuracy,
            "estimated_accuracy": self.estimated_accuracy,
            "gap": self.gap,
            "z": self.z,
            "realised_auc": self.realised_auc,
            "estimated_auc": self.estimated_auc,
            "realised_cost": self.realised_cost,
            "estimated_cost": self.estimated_cost,
        }


def compare(
    probability: np.ndarray, decided_positive: np.ndarray, truth: np.ndarray, costs: Costs
) -> Comparison:
    p = np.asarray(probability, dtype=float)
    positive, actual = np.asarray(decided_positive, dtype=bool), np.asarray(truth, dtype=bool)
    q = correct_probability(p, positive)
    correct = float((positive == actual).sum())
    expected, variance = float(q.sum()), float((q * (1 - q)).sum())
    n = max(1, p.size)
    return Comparison(
        labelled=p.size,
        realised_accuracy=correct / n,
        estimated_accuracy=expected / n,
        gap=(correct - expected) / n,
        z=float((correct - expected) / np.sqrt(variance)) if variance > 0 else 0.0,
        realised_auc=realised_auc(p, actual),
        estimated_auc=expected_auc(p),
        realised_cost=realised_cost(actual, positive, costs),
        estimated_cost=expected_cost(p, positive, costs),
    )


@dataclass
class Window:
    """`size` consecutive served predictions of one model version, and the labels that came back."""

    seq: int
    probability: list[float] = field(default_factory=list)
    positive: list[bool] = field(default_factory=list)
    closed: Estimate | None = None
    # the labelled predictions, as three columns (cheap to pickle with the watch on every batch)
    labelled_probability: list[float] = field(default_factory=list)
    labelled_positive: list[bool] = field(default_factory=list)
    labelled_truth: list[bool] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return len(self.labelled_truth)

    def comparison(self, costs: Costs) -> Comparison | None:
        if not self.labelled_truth:
            return None
        return compare(
            np.array(self.labelled_probability),
            np.array(self.labelled_positive, dtype=bool),
            np.array(self.labelled_truth, dtype=bool),
            costs,
        )


@dataclass
class PerformanceEstimator:
    """CBPE over consecutive windows of one model version's served predictions."""

    window_size: int = 500
    windows_kept: int = 12
    min_labelled: int = 100  # labels a window needs before its estimate is judged
    miss_z: float = 3.0  # |z| past this is a miss
    misses_to_suspect: int = 2  # the last this-many judged windows all missed: the estimator is suspect
    drop_limit: float = 0.05  # accuracy points below the version's first window that matter
    drop_z: float = 3.0  # standard errors the drop must clear
    costs: Costs = field(default_factory=Costs)
    calibrated: bool = True  # False once a prediction came without a calibrated probability
    windows: deque[Window] = field(default_factory=deque)
    reference: Estimate | None = None  # the version's first full window
    next_seq: int = 0

    def observe(self, probability: float, decided_positive: bool, calibrated: bool = True) -> int:
        """Adds one served prediction; returns the sequence number of its window (for the label)."""
        if not calibrated:
            self.calibrated = False
        window = self.windows[-1] if self.windows and self.windows[-1].closed is None else None
        if window is None:
            window = Window(self.next_seq)
            self.next_seq += 1
            self.windows.append(window)
            while len(self.windows) > self.windows_kept:
                self.windows.popleft()
        window.probability.append(float(probability))
        window.positive.append(bool(decided_positive))
        if len(window.probability) >= self.window_size:
            window.closed = estimate(np.array(window.probability), np.array(window.positive), self.costs)
            window.probability, window.positive = [], []  # the estimate is all that is kept
            if self.reference is None:
                self.reference = window.closed
        return window.seq

    def label(self, seq: int | None, probability: float, decided_positive: bool, truth: bool) -> bool:
        """Adds a label to its window; False when the window is no longer kept (or unknown)."""
        for window in reversed(self.windows):  # labels mostly belong to recent windows
            if window.seq == seq:
                window.labelled_probability.append(float(probability))
                window.labelled_positive.append(bool(decided_positive))
                window.labelled_truth.append(bool(truth))
                return True
        return False

    def latest(self) -> Estimate | None:
        """The last closed window's estimate (the open one is still filling)."""
        closed = [w.closed for w in self.windows if w.closed is not None]
        return closed[-1] if closed else None

    def judged(self, last: int | None = None) -> list[tuple[int, Comparison]]:
        """(window, comparison) of the closed windows holding at least `min_labelled` labels, oldest
        first; only the `last` most recent of them when given (the snapshot needs a few)."""
        found: list[tuple[int, Comparison]] = []
        for window in reversed(self.windows):
            if last is not None and len(found) >= last:
                break
            if window.closed is not None and window.labelled >= self.min_labelled:
                comparison = window.comparison(self.costs)
                if comparison is not None:
                    found.append((window.seq, comparison))
        return found[::-1]

    def snapshot(self) -> dict[str, Any]:
        """What /detectors, the gauges and `mlops watch` show."""
        latest, judged = self.latest(), self.judged(last=self.misses_to_suspect)
        drop = drop_se = None
        dropped = False
        if latest is not None and self.reference is not None:
            drop = self.reference.accuracy - latest.accuracy
            drop_se = float(np.hypot(self.reference.accuracy_se, latest.accuracy_se))
            dropped = drop > self.drop_limit and drop > self.drop_z * drop_se
        suspect = len(judged) == self.misses_to_suspect and all(abs(c.z) > self.miss_z for _, c in judged)
        last = judged[-1] if judged else None
        return {
            "calibrated": self.calibrated,
            "window_size": self.window_size,
            "windows": len(self.windows),
            "estimate": latest.as_dict() if latest else None,
            "reference": self.reference.as_dict() if self.reference else None,
            "accuracy_drop": drop,
            "accuracy_drop_se": drop_se,
            "drop_detected": dropped,
            "judged_window": last[0] if last else None,
            "realised": last[1].as_dict() if last else None,
            "estimator_suspect": suspect,
        }
