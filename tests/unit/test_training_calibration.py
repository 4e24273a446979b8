"""Calibration of every candidate: a Platt map on out-of-fold scores, measured on the holdout (real
scikit-learn throughout, no mocked math)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contracts.model import platt
from services.training.domain.calibration import (
    BINS,
    apply_platt,
    calibrate,
    calibrate_in_sample,
    expected_calibration_error,
    fit_platt,
    reliability_curve,
)
from services.training.domain.dataset import LABEL, time_split
from services.training.domain.model import build_pipeline, evaluate, input_features
from services.training.domain.policy import GatePolicy, ModelParams
from tests.unit.test_training_support import feature_frame


def squashed(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a true probability, and a score squashed towards 0.5 (under-confident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return 1 / (1 + np.exp(-0.3 * z + 0.2)), y  # logit shrunk 0.3x and shifted


def test_a_squashed_score_is_recalibrated_and_its_held_out_ece_falls() -> None:
    fit_scores, fit_y = squashed(4000, seed=1)
    held_scores, held_y = squashed(4000, seed=2)
    slope, intercept = fit_platt(fit_scores, fit_y)
    assert slope == pytest.approx(1 / 0.3, rel=0.15)  # a squashed score is stretched back
    before = expected_calibration_error(held_y, held_scores)
    after = expected_calibration_error(held_y, apply_platt(held_scores, slope, intercept))
    assert before > 0.1 and after < 0.03 and after < before / 4


def test_the_array_map_is_the_card_s_map() -> None:
    scores = np.array([0.0, 1e-15, 0.01, 0.3, 0.5, 0.9, 1 - 1e-15, 1.0])
    expected = [platt(float(s), 1.7, -0.4) for s in scores]
    assert apply_platt(scores, 1.7, -0.4) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_ece_and_the_reliability_curve_on_a_known_case() -> None:
    y = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    p = np.array([0.05, 0.05, 0.05, 0.05, 0.95, 0.95, 0.95, 0.95])
    # two bins of four rows: observed 0.5 vs 0.05 and 0.75 vs 0.95
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.45 + 0.5 * 0.2)
    curve = reliability_curve(y, p)
    assert curve == {"mean_predicted": [0.05, 0.95], "fraction_positive": [0.5, 0.75], "rows": [4, 4]}
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = feature_frame(800).rename(columns={"_label": LABEL})
    return time_split(frame, 0.25)


def test_an_over_regularised_pipeline_is_calibrated_on_out_of_fold_scores(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """A strongly penalised logistic regression squashes its scores towards the base rate; the map
    fitted on its out-of-fold training scores lowers the holdout's ECE and Brier."""
    train, holdout = split
    policy = GatePolicy()
    inputs, params = input_features(policy), ModelParams(C=0.002)

    def refit(rows: pd.DataFrame) -> object:
        return build_pipeline(inputs, params).fit(rows[inputs], rows[LABEL])

    pipeline = refit(train)
    scored = evaluate(holdout, pipeline.predict_proba(holdout[inputs])[:, 1], policy).scored
    assert scored is not None
    result = calibrate(refit, train, inputs, scored.y, scored.p_bad, seed=params.seed)
    c = result.calibration
    assert c is not None and result.reason is None
    assert c.fitted_rows == len(train) and c.slope > 1
    assert c.holdout_ece_after < c.holdout_ece_before
    assert c.holdout_brier_after < c.holdout_brier_before
    assert result.metrics()["calibration_ece_after"] == c.holdout_ece_after
    assert result.params()["calibration_method"] == "platt"
    curve = result.reliability["calibrated"]
    assert sum(curve["rows"]) == len(holdout) and len(curve["mean_predicted"]) <= BINS
    again = calibrate(refit, train, inputs, scored.y, scored.p_bad, seed=params.seed)
    assert again.calibration == c  # seeded folds: the same map every time


@pytest.mark.parametrize(
    ("rows", "bad", "needle"),
    [(30, 10, "too few training rows"), (200, 3, "rarer class has 3")],
)
def test_too_few_rows_or_a_rare_class_leaves_the_candidate_uncalibrated(
    split: tuple[pd.DataFrame, pd.DataFrame], rows: int, bad: int, needle: str
) -> None:
    train, _ = split
    good = train[train[LABEL] == 0].head(rows - bad)
    part = pd.concat([good, train[train[LABEL] == 1].head(bad)])
    inputs = input_features(GatePolicy())
    fitted: list[int] = []

    def refit(rows_: pd.DataFrame) -> object:
        fitted.append(len(rows_))
        return build_pipeline(inputs, ModelParams()).fit(rows_[inputs], rows_[LABEL])

    result = calibrate(refit, part, inputs, np.array([0, 1]), np.array([0.2, 0.7]), seed=7)
    assert result.calibration is None and needle in (result.reason or "")
    assert result.metrics() == {} and result.reliability == {} and not fitted
    assert result.params()["calibration_method"] == "none"


def test_a_fold_that_cannot_be_fitted_skips_calibration(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = split

    def refuse(rows: pd.DataFrame) -> object:
        raise ValueError("no convergence")

    result = calibrate(refuse, train, ["duration_in_month"], np.array([0, 1]), np.array([0.2, 0.7]), seed=7)
    assert result.calibration is None and result.reason == "fold 1 could not be fitted: no convergence"


def test_scores_that_do_not_rank_the_labels_are_not_mapped() -> None:
    scores, y = squashed(500, seed=3)
    with pytest.raises(Exception, match="do not rank"):
        fit_platt(1 - scores, y)


def test_in_sample_calibration_maps_a_model_on_its_own_training_scores() -> None:
    """The mitigated candidate's path: no refits, the map fitted on the model's own training scores,
    measured on the holdout, and said (`calibration_folds` 0)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 1))
    y = (rng.random(600) < 1 / (1 + np.exp(-2 * x[:, 0]))).astype(int)
    train = pd.DataFrame({"x": x[:400, 0], LABEL: y[:400]})

    class Squashed:  # ranks right, probabilities pulled towards 0.5
        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            p = 1 / (1 + np.exp(-0.6 * frame["x"].to_numpy()))
            return np.c_[1 - p, p]

    holdout = pd.DataFrame({"x": x[400:, 0]})
    raw = Squashed().predict_proba(holdout)[:, 1]
    result = calibrate_in_sample(Squashed(), train, ["x"], y[400:], raw)
    assert result.calibration is not None and result.folds == 0 and result.params()["calibration_folds"] == 0
    assert result.calibration.slope > 2  # undoes the squashing (about 2 / 0.6)
    assert result.calibration.holdout_ece_after < result.calibration.holdout_ece_before
    one_class = calibrate_in_sample(Squashed(), train.assign(**{LABEL: 0}), ["x"], y[400:], raw)
    assert one_class.calibration is None and one_class.reason
