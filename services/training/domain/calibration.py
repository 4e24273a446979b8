"""Calibration of a candidate: a Platt map fitted on out-of-fold scores of the training rows.

The served model stays the plain pipeline (serving's compiled scorer and explain's linear SHAP rely on
its shape), and so do its score and decisions. Beside it the card carries a map from the score to a
calibrated probability, p = sigmoid(slope * logit(score) + intercept) (`contracts.model.platt`), which
the drift service needs to estimate performance before labels arrive.

The map is fitted on scores the model did not train on: the same model is refitted on 5 stratified,
seeded folds of the training rows and each row scored by the fit that left it out. It is measured on
the holdout: expected calibration error (10 equal-width bins) and Brier score, before and after, and
the reliability curve. Too few rows, a class too rare for the folds, or a fold that cannot be fitted
leaves the candidate uncalibrated (with the reason); it never fails a training run.

A fairness-mitigated candidate is calibrated in-sample instead (`calibrate_in_sample`: its own
scores of the training rows): refitting the mitigation (fairlearn's ExponentiatedGradient) in 5
folds tripled its training time, which on a loaded machine starved the demo's loop of rows before its
recovery. In-sample scores of a constrained ensemble are slightly optimistic; the holdout figures
(ECE before and after) say how well the map does, and `calibration_folds` is 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from contracts.model import PLATT_EPSILON, Calibration
from services.training.domain.dataset import LABEL

FOLDS = 5
BINS = 10
MIN_ROWS = 50  # training rows below which no map is fitted (10 per fold)

FitFold = Callable[[pd.DataFrame], Any]  # training rows -> a fitted model with predict_proba


class Skip(Exception):
    """Why no calibration map is fitted."""


@dataclass(frozen=True)
class Calibrated:
    """The outcome for one candidate: the card's map (None when skipped, with the reason), and the
    holdout's reliability curves (raw and calibrated) as a JSON document."""

    calibration: Calibration | None
    reason: str | None = None
    reliability: dict[str, Any] = field(default_factory=dict)
    folds: int = FOLDS  # 0: fitted on the model's own (in-sample) training scores

    def metrics(self) -> dict[str, float]:
        """The run's calibration metrics (none when skipped)."""
        c = self.calibration
        if c is None:
            return {}
        return {
            "calibration_slope": c.slope,
            "calibration_intercept": c.intercept,
            "calibration_fitted_rows": float(c.fitted_rows),
            "calibration_ece_before": c.holdout_ece_before,
            "calibration_ece_after": c.holdout_ece_after,
            "calibration_brier_before": c.holdout_brier_before,
            "calibration_brier_after": c.holdout_brier_after,
        }

    def params(self) -> dict[str, Any]:
        method = self.calibration.method if self.calibration else "none"
        return {"calibration_method": method, "calibration_folds": self.folds, "calibration_bins": BINS}


def calibrate(
    fit_fold: FitFold,
    train: pd.DataFrame,
    inputs: list[str],
    holdout_y: np.ndarray,
    holdout_scores: np.ndarray,
    seed: int,
) -> Calibrated:
    """Fit the map on out-of-fold training scores, measure it on the holdout's scores (of the model
    fitted on all training rows)."""
    try:
        scores = out_of_fold_scores(fit_fold, train, inputs, seed)
    except Skip as skipped:
        return Calibrated(None, str(skipped))
    return mapped(scores, train[LABEL].to_numpy(), holdout_y, holdout_scores, FOLDS)


def calibrate_in_sample(
    model: Any, train: pd.DataFrame, inputs: list[str], holdout_y: np.ndarray, holdout_scores: np.ndarray
) -> Calibrated:
    """The map fitted on the model's own scores of its training rows (no refits), measured on the
    holdout like the other."""
    y = train[LABEL].to_numpy()
    if len(y) < MIN_ROWS or len(np.unique(y)) < 2:
        return Calibrated(None, f"too few training rows or one class: {len(y)} rows", folds=0)
    scores = np.asarray(model.predict_proba(train[inputs])[:, 1], dtype=float)
    return mapped(scores, y, holdout_y, holdout_scores, 0)


def mapped(
    scores: np.ndarray, y: np.ndarray, holdout_y: np.ndarray, holdout_scores: np.ndarray, folds: int
) -> Calibrated:
    """The Platt map of `scores` -> `y`, measured on the holdout."""
    try:
        slope, intercept = fit_platt(scores, y)
    except Skip as skipped:
        return Calibrated(None, str(skipped), folds=folds)
    y_h = np.asarray(holdout_y, dtype=int)
    raw = np.asarray(holdout_scores, dtype=float)
    calibrated = apply_platt(raw, slope, intercept)
    calibration = Calibration(
        slope=slope,
        intercept=intercept,
        fitted_rows=len(y),
        holdout_ece_before=expected_calibration_error(y_h, raw),
        holdout_ece_after=expected_calibration_error(y_h, calibrated),
        holdout_brier_before=float(brier_score_loss(y_h, raw)),
        holdout_brier_after=float(brier_score_loss(y_h, calibrated)),
    )
    document = {
        "method": "platt",
        "bins": BINS,
        "strategy": "uniform",
        "holdout_rows": len(y_h),
        "raw": reliability_curve(y_h, raw),
        "calibrated": reliability_curve(y_h, calibrated),
        "calibration": calibration.model_dump(mode="json"),
        "folds": folds,
    }
    return Calibrated(calibration, None, document, folds)


def out_of_fold_scores(fit_fold: FitFold, train: pd.DataFrame, inputs: list[str], seed: int) -> np.ndarray:
    """P(positive) of every training row by a model fitted on the other folds (stratified, seeded)."""
    y = train[LABEL].to_numpy()
    rarest = int(min(np.sum(y == 1), np.sum(y == 0)))
    if len(y) < MIN_ROWS:
        raise Skip(f"too few training rows to calibrate: {len(y)}, at least {MIN_ROWS} are needed")
    if rarest < FOLDS:
        raise Skip(f"the rarer class has {rarest} training rows: each of the {FOLDS} folds needs one")
    scores = np.empty(len(y), dtype=float)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for number, (fit_rows, score_rows) in enumerate(folds.split(np.zeros(len(y)), y), start=1):
        part = train.iloc[fit_rows]
        if part[LABEL].nunique() < 2:
            raise Skip(f"fold {number} holds a single class")
        try:
            model = fit_fold(part)
            scores[score_rows] = model.predict_proba(train.iloc[score_rows][inputs])[:, 1]
        except ValueError as exc:
            raise Skip(f"fold {number} could not be fitted: {exc}") from None
    return scores


def fit_platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of a 1-D logistic regression of the labels on logit(score)."""
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        raise Skip("the calibration rows hold a single class")
    model = LogisticRegression(C=1e6, max_iter=1000)  # (almost) unpenalised: Platt's maximum likelihood
    model.fit(logit(scores).reshape(-1, 1), y)
    slope, intercept = float(model.coef_[0][0]), float(model.intercept_[0])
    if not (math.isfinite(slope) and math.isfinite(intercept)) or slope <= 0:
        raise Skip(f"the out-of-fold scores do not rank the labels (slope {slope:.3g})")
    return slope, intercept


def logit(scores: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=float), PLATT_EPSILON, 1.0 - PLATT_EPSILON)
    return np.asarray(np.log(p / (1.0 - p)))


def apply_platt(scores: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """`contracts.model.platt` over an array (the same clipping, the same map)."""
    from scipy.special import expit

    return np.asarray(expit(slope * logit(scores) + intercept))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> float:
    """Sum over equal-width bins of (share of rows) * |observed rate - mean probability|."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    which = bin_ids(p, bins)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(y[members].mean() - p[members].mean())
    return float(total)


def reliability_curve(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> dict[str, list[float]]:
    """Per non-empty equal-width bin: mean probability, observed positive rate, rows."""
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    counts = np.bincount(bin_ids(np.asarray(p, dtype=float), bins), minlength=bins)
    return {
        "mean_predicted": [round(float(v), 6) for v in predicted],
        "fraction_positive": [round(float(v), 6) for v in observed],
        "rows": [int(c) for c in counts if c > 0],
    }


def bin_ids(p: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The equal-width bin of each probability, as `sklearn.calibration.calibration_curve` bins them
    (an edge belongs to the bin below it)."""
    return np.asarray(np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], p))
