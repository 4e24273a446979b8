"""The arithmetic of confidence-based performance estimation (CBPE) on one window of predictions:
expected accuracy, ROC AUC and cost from calibrated probabilities, and the comparison with the labels
when they come. The windows and the flags are in domain/estimate.py, which explains the method.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def pooled(parts: list[Estimate]) -> Estimate:
    """Several windows' estimates as one: means, and the standard error of the mean of the means."""
    k = len(parts)
    aucs = [p.auc for p in parts if p.auc is not None]
    return Estimate(
        rows=sum(p.rows for p in parts),
        accuracy=float(np.mean([p.accuracy for p in parts])),
        accuracy_se=float(np.sqrt(sum(p.accuracy_se**2 for p in parts)) / k),
        auc=float(np.mean(aucs)) if aucs else None,
        cost=float(np.mean([p.cost for p in parts])),
        approval_rate=float(np.mean([p.approval_rate for p in parts])),
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
