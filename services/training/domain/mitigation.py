"""Fairness mitigation, tried when a candidate falls short on fairness only: fairlearn's
ExponentiatedGradient reduction, with the training set's sensitive attribute at fault as the group.

- A demographic-parity gap (approval rates) is constrained with `DemographicParity`: equal rates of
  predicted "bad" are equal approval rates.
- An equal-opportunity gap (approval among applicants who turned out good) with
  `FalsePositiveRateParity`: with "bad" as the positive class, approving a good applicant is avoiding a
  false positive, so equal approval among the good is equal false-positive rates.

The reduction returns a weighted mixture of logistic regressions, all on the same prepared inputs.
It is served as one scikit-learn object, a soft-voting ensemble with the mixture's weights (P(bad) is
the weighted mean of the members' P(bad)), so serving, explain and MLflow load it like any pipeline and
need neither fairlearn nor the sensitive attribute at prediction time. A one-member mixture is that
member alone (the compiled linear scorer of serving still applies).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import VotingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch

from services.training.domain.dataset import LABEL, age_band, sex_of
from services.training.domain.gate import FAIRNESS_CHECKS, Verdict
from services.training.domain.policy import GatePolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mitigation:
    pipeline: Pipeline
    check: str  # the fairness check at fault, e.g. "dpd_sex"
    method: str  # human-readable: reduction, constraint, bound, attribute, mixture size


def check_at_fault(verdict: Verdict) -> str | None:
    """The fairness check that is furthest past its limit (by its estimate), if any failed to pass."""
    short = [c for c in verdict.evidence.checks if c.name in FAIRNESS_CHECKS and not c.passed]
    if not short:
        return None
    return max(short, key=lambda c: (c.value or 0.0) - (c.threshold or 0.0)).name


def sensitive_groups(frame: pd.DataFrame, attribute: str, policy: GatePolicy) -> np.ndarray:
    if attribute == "sex":
        return sex_of(frame["personal_status_and_sex"])
    return age_band(frame["age_in_years"], policy.age_band_edges)


def mitigate(
    fitted: Pipeline, train: pd.DataFrame, inputs: list[str], check: str, policy: GatePolicy
) -> Mitigation:
    """A mitigated copy of `fitted` (prepare step reused, classifier refitted under the constraint)."""
    from fairlearn.reductions import DemographicParity, ExponentiatedGradient, FalsePositiveRateParity

    kind, attribute = check.split("_", 1)
    bound = policy.fairness.mitigation_bound
    constraint = (
        DemographicParity(difference_bound=bound)
        if kind == "dpd"
        else FalsePositiveRateParity(difference_bound=bound)
    )
    prepare, classifier = fitted.named_steps["prepare"], fitted.named_steps["classify"]
    features = prepare.transform(train[inputs])
    if hasattr(features, "toarray"):  # fairlearn 0.12 takes dense input only (one-hot may be sparse)
        features = features.toarray()
    reduction = ExponentiatedGradient(clone(classifier), constraint)
    with warnings.catch_warnings():  # convergence chatter of the inner fits on reweighted data
        warnings.simplefilter("ignore")
        reduction.fit(
            features, train[LABEL].to_numpy(), sensitive_features=sensitive_groups(train, attribute, policy)
        )
    weights = np.asarray(reduction.weights_, dtype=float)
    members = [(f"member_{i}", p) for i, p in enumerate(reduction.predictors_) if weights[i] > 1e-9]
    kept = [float(w) for w in weights if w > 1e-9]
    mixture = members[0][1] if len(members) == 1 else soft_mixture(members, kept)
    method = (
        f"fairlearn ExponentiatedGradient, {type(constraint).__name__}(difference_bound={bound}) on "
        f"{attribute}; a mixture of {len(members)} logistic regression(s)"
    )
    return Mitigation(Pipeline([("prepare", prepare), ("classify", mixture)]), check, method)


def soft_mixture(members: list[tuple[str, object]], weights: list[float]) -> VotingClassifier:
    """A fitted soft-voting ensemble of already fitted members (scikit-learn has no prefit option:
    the fitted attributes are set as `fit` would)."""
    ensemble = VotingClassifier(members, voting="soft", weights=weights)
    ensemble.estimators_ = [member for _, member in members]
    ensemble.le_ = LabelEncoder().fit([0, 1])
    ensemble.classes_ = ensemble.le_.classes_
    ensemble.named_estimators_ = Bunch(**dict(members))
    return ensemble
