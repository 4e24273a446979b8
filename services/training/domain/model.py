"""The model and how it is scored: a seeded scikit-learn pipeline, metrics and fairness on a holdout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from feature_repo.names import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from services.training.domain.dataset import LABEL, age_band, sex_of
from services.training.domain.fairness import (
    GroupGap,
    demographic_parity_difference,
    equal_opportunity_difference,
)
from services.training.domain.policy import GatePolicy, ModelParams

ScoreFn = Callable[[pd.DataFrame], np.ndarray]  # frame -> P(bad) per row


def input_features(policy: GatePolicy) -> list[str]:
    """The model's input columns: the feature view's, minus the excluded ones, in FEATURES order."""
    return [name for name in FEATURES if name not in set(policy.exclude_features)]


def build_pipeline(inputs: list[str], params: ModelParams) -> Pipeline:
    numeric = [n for n in inputs if n in NUMERIC_FEATURES]
    categorical = [n for n in inputs if n in CATEGORICAL_FEATURES]
    prepare = ColumnTransformer(
        [
            ("numeric", StandardScaler(), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    classifier = LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=params.seed)
    return Pipeline([("prepare", prepare), ("classify", classifier)])


@dataclass(frozen=True)
class Scored:
    """The holdout rows behind an evaluation, kept for the gate's paired bootstrap."""

    y: np.ndarray  # 1 = bad
    p_bad: np.ndarray
    approved: np.ndarray
    groups: dict[str, np.ndarray]  # sensitive attribute -> group of each row


@dataclass(frozen=True)
class Evaluation:
    """One model scored on the holdout: metrics plus the fairness gaps behind them (and the rows)."""

    metrics: dict[str, float]
    fairness: dict[str, GroupGap]
    scored: Scored | None = None


def evaluate(holdout: pd.DataFrame, p_bad: np.ndarray, policy: GatePolicy) -> Evaluation:
    y = holdout[LABEL].to_numpy()
    p = np.clip(np.asarray(p_bad, dtype=float), 1e-15, 1 - 1e-15)
    approved = p < policy.decision_threshold
    metrics = {
        "auc": float(roc_auc_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "approval_rate": float(approved.mean()),
        "holdout_rows": float(len(y)),
    }
    size = policy.fairness.min_group_size
    groups = {
        "sex": sex_of(holdout["personal_status_and_sex"]),
        "age_band": age_band(holdout["age_in_years"], policy.age_band_edges),
    }
    fairness: dict[str, GroupGap] = {}
    for attribute, members in groups.items():
        fairness[f"dpd_{attribute}"] = demographic_parity_difference(approved, members, size)
        fairness[f"eod_{attribute}"] = equal_opportunity_difference(approved, y == 1, members, size)
    metrics |= {name: gap.value for name, gap in fairness.items() if gap.value is not None}
    return Evaluation(metrics, fairness, Scored(y, p, approved, groups))
