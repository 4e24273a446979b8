"""Issue 17, item 4: online model quality per version, from the label join."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from services.drift.domain.quality import RollingQuality, auc, calibration_error


def test_auc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(400) < 0.3
    score = np.round(np.clip(0.3 * truth + rng.random(400) * 0.7, 0, 1), 1)  # many ties
    assert auc(score, truth) == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    assert auc(score, np.zeros(400, bool)) is None  # one class only: undefined, not 0.5


def test_a_calibrated_model_has_a_small_error_and_an_overconfident_one_a_large_one() -> None:
    rng = np.random.default_rng(5)
    score = rng.random(20_000)
    truth = rng.random(20_000) < score  # calibrated by construction
    assert calibration_error(score, truth) < 0.02
    overconfident = np.where(score > 0.5, 0.99, 0.01)
    assert calibration_error(overconfident, truth) > 0.2


def test_the_window_keeps_the_last_labelled_predictions_only() -> None:
    quality = RollingQuality(size=100)
    for _ in range(300):  # an old, perfect stretch...
        quality.add(0.9, True, True)
    rng = np.random.default_rng(1)
    scores, truths = rng.random(100), rng.random(100) < 0.5
    for s, t in zip(scores, truths, strict=True):  # ...then 100 coin flips
        quality.add(float(s), bool(t), bool(s >= 0.5))
    measures = quality.measures()
    assert measures["labelled"] == 100
    assert measures["accuracy"] == pytest.approx(np.mean((scores >= 0.5) == truths))
    assert measures["brier"] == pytest.approx(brier_score_loss(truths, scores))
    assert measures["auc"] == pytest.approx(roc_auc_score(truths, scores))


def test_nothing_labelled_yet_says_so() -> None:
    assert RollingQuality().measures() == {
        "labelled": 0.0,
        "accuracy": None,
        "auc": None,
        "brier": None,
        "calibration_error": None,
    }
