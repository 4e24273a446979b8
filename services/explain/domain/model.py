"""The model being explained, as one immutable value, and the explanation it yields."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from contracts.model import Column, Kind

Scalar = int | float | str | bool | None
METHODS = ("shap", "lime", "counterfactual")
__all__ = ["Column", "ExplainableModel", "Kind", "LocalExplanation", "Scalar", "logit"]


@dataclass(frozen=True)
class ExplainableModel:
    """One registered version: the scikit-learn pipeline, its inputs and its reference sample."""

    name: str
    version: str
    columns: tuple[Column, ...]
    threshold: float
    pipeline: Any
    reference: pd.DataFrame  # model inputs (and "label" when logged), typed as the columns declare
    run_id: str = ""
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def categorical(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "str"]

    def frame(self, rows: Sequence[Mapping[str, Scalar]]) -> pd.DataFrame:
        return pd.DataFrame(list(rows), columns=self.feature_names)

    def p_bad(self, frame: pd.DataFrame) -> np.ndarray:
        """P(bad) per row (predict_proba[:, 1], the model contract)."""
        return np.asarray(self.pipeline.predict_proba(frame[self.feature_names])[:, 1], dtype=float)

    def decide(self, p_bad: float) -> str:
        return "decline" if p_bad >= self.threshold else "approve"


def logit(p: float) -> float:
    """Log-odds, clipped away from 0 and 1.

    >>> round(logit(0.5), 6), round(logit(0.731059), 3)
    (0.0, 1.0)
    """
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: Scalar
    contribution: float


@dataclass(frozen=True)
class Counterfactual:
    """Smallest change found that flips the decision (None when the search found none)."""

    changes: dict[str, tuple[Scalar, Scalar]]  # feature -> (from, to)
    p_bad: float
    decision: str
    evaluated: int


@dataclass
class LocalExplanation:
    model_name: str
    model_version: str
    prediction_id: str | None
    features: dict[str, Scalar]
    p_bad: float
    decision: str
    threshold: float
    shap: list[Contribution] | None = None
    shap_base_value: float | None = None
    shap_algorithm: str | None = None  # "exact_linear" or "kernel"
    lime: list[Contribution] | None = None
    counterfactual: Counterfactual | None = None
    counterfactual_searched: bool = False
    fidelity: dict[str, float | bool] = field(default_factory=dict)
    summary: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        done = {"shap": self.shap is not None, "lime": self.lime is not None}
        done["counterfactual"] = self.counterfactual_searched
        return [m for m in METHODS if done[m]]


PredictProba = Callable[[pd.DataFrame], np.ndarray]
