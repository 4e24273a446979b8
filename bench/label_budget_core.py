"""The label-budget benchmark's pure core (bench/label_budget.py runs it on the demo's stream): which
predictions go to annotation, the retrain on what was annotated, and the "recovered" rule.

Picks are positions in the pool of drifted predictions. For one run every strategy's picks are
nested across budgets (the first 50 of a queue include its first 25), as an annotator working down
one queue would label them; a budget-to-recover therefore reads one queue, not six unrelated draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from services.training.domain.dataset import LABEL
from services.training.domain.model import build_pipeline
from services.training.domain.policy import ModelParams

STRATEGIES = ("uncertainty", "random", "mixed")
AUDIT_SHARE = 0.2  # `mixed`: this share of the budget is a random audit, the rest the most uncertain
RECOVERY_SHARE = 0.9  # recovered: the gap between "no labels" and "ceiling" closed by this share
RECOVERED_RULE = f"accuracy >= no_labels + {RECOVERY_SHARE} * (ceiling - no_labels)"


def uncertainty_queue(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Pool positions by |score - threshold|, nearest first (ties by position, so it is deterministic).

    The score is the pipeline's P(bad), the one serving compares with the threshold to decide; the
    card's Platt map is for estimating performance and never moves a decision."""
    return np.argsort(np.abs(np.asarray(scores, dtype=float) - threshold), kind="stable")


def mixed_queue(uncertain: np.ndarray, shuffled: np.ndarray, budget: int) -> np.ndarray:
    """`budget` picks: the nearest (1 - AUDIT_SHARE) of them plus a random audit of the rest."""
    audited = round(budget * AUDIT_SHARE)
    nearest = uncertain[: budget - audited]
    audit = shuffled[~np.isin(shuffled, nearest)][:audited]
    return np.concatenate([nearest, audit])


def picks(strategy: str, budget: int, uncertain: np.ndarray, shuffled: np.ndarray) -> np.ndarray:
    """The pool positions a strategy sends to annotation; `shuffled` is this run's random order."""
    if not 0 <= budget <= len(uncertain):
        raise ValueError(f"budget {budget} outside 0..{len(uncertain)} (the pool)")
    if strategy == "uncertainty":
        return uncertain[:budget]
    if strategy == "random":
        return shuffled[:budget]
    if strategy == "mixed":
        return mixed_queue(uncertain, shuffled, budget)
    raise ValueError(f"strategy must be one of {STRATEGIES}")


def recovery_target(no_labels: float, ceiling: float, share: float = RECOVERY_SHARE) -> float:
    """The accuracy a retrain must reach to count as recovered: no_labels + share * (ceiling - no_labels)."""
    return no_labels + share * (ceiling - no_labels)


def budget_to_recover(
    accuracy_by_budget: dict[int, float], no_labels: float, ceiling: float, share: float = RECOVERY_SHARE
) -> int | None:
    """The smallest budget whose accuracy reaches the target; None when none does, 0 when the
    champion already does (the ceiling is no better than it: nothing to recover)."""
    target = recovery_target(no_labels, ceiling, share)
    if no_labels >= target - 1e-12:
        return 0
    reached = [b for b, accuracy in accuracy_by_budget.items() if accuracy >= target - 1e-12]
    return min(reached) if reached else None


@dataclass(frozen=True)
class RunData:
    """One run's rows: the champion's pre-drift training rows, the pool it scored, the holdout."""

    pre_drift: pd.DataFrame
    pool: pd.DataFrame
    holdout: pd.DataFrame
    inputs: list[str]
    params: ModelParams
    threshold: float
    with_history: bool = True  # retrain on pre-drift rows + the labelled ones; False: labelled only


@dataclass
class RunResult:
    no_labels: float
    ceiling: float
    accuracy: dict[str, dict[int, float]] = field(default_factory=dict)  # strategy -> budget -> acc
    not_fitted: dict[str, list[int]] = field(default_factory=dict)  # budgets whose picks held one class

    def to_recover(self, strategy: str) -> int | None:
        return budget_to_recover(self.accuracy[strategy], self.no_labels, self.ceiling)


def fit(rows: pd.DataFrame, data: RunData) -> Any | None:
    """The training service's pipeline fitted on `rows`; None when they hold a single class (the
    service refuses such a run, and the champion keeps serving)."""
    if rows[LABEL].nunique() < 2:
        return None
    return build_pipeline(data.inputs, data.params).fit(rows[data.inputs], rows[LABEL])


def accuracy(model: Any, data: RunData) -> float:
    """Share of holdout decisions that were right: decline (bad) when P(bad) >= threshold."""
    declined = model.predict_proba(data.holdout[data.inputs])[:, 1] >= data.threshold
    return float(np.mean(declined == (data.holdout[LABEL].to_numpy() == 1)))


def retrained_accuracy(data: RunData, labelled: pd.DataFrame) -> float | None:
    """Holdout accuracy of the retrain on `labelled` (plus history); None if it cannot be fitted."""
    rows = pd.concat([data.pre_drift, labelled]) if data.with_history else labelled
    model = fit(rows, data)
    return None if model is None else accuracy(model, data)


def run_once(
    data: RunData, budgets: Sequence[int], strategies: Sequence[str], rng: np.random.Generator
) -> RunResult:
    champion = fit(data.pre_drift, data)
    if champion is None:
        raise ValueError("the pre-drift rows hold a single class: no champion")
    no_labels = accuracy(champion, data)
    ceiling = retrained_accuracy(data, data.pool)
    result = RunResult(no_labels, no_labels if ceiling is None else ceiling)
    uncertain = uncertainty_queue(champion.predict_proba(data.pool[data.inputs])[:, 1], data.threshold)
    shuffled = rng.permutation(len(data.pool))
    for strategy in strategies:
        result.accuracy[strategy], result.not_fitted[strategy] = {}, []
        for budget in budgets:
            chosen = picks(strategy, budget, uncertain, shuffled)
            found = retrained_accuracy(data, data.pool.iloc[chosen])
            if found is None:  # no retrain possible: the champion still serves
                result.not_fitted[strategy].append(budget)
            result.accuracy[strategy][budget] = no_labels if found is None else found
    return result
