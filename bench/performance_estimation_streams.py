"""Scored streams of known true performance for bench/performance_estimation.py.

Each stream is what a served model leaves behind: per prediction the calibrated P(positive), the
decision (positive when P >= 0.5) and the truth, with a known change row.

- German credit (covariate shift): the platform's pipeline (`build_pipeline` over the 20 features),
  Platt-calibrated on out-of-fold scores (CalibratedClassifierCV, sigmoid, 3 folds), trained on
  `TRAIN` applicants of `workbench.applicant_generator`. After the change the applicants are
  SELECTED on their inputs (exponential tilting of the normal scores of the named features, by
  sampling-importance-resampling without replacement from a pool of fresh applicants): P(x) moves,
  P(label | x) stays the generator's own, which is CBPE's assumption. The realised shift of each
  feature (mean normal score after the change, in sd) and the true accuracy change are reported.
- The demo's drift injection (`credit_amount x 1.6`, labels kept): the value changes after the
  label was drawn, so P(label | the new x) is not the model's: outside CBPE's assumption.
- Agrawal (river): a calibrated gradient-boosting model trained on function 0, then the labels come
  from function 2, 4 or 6 (a concept switch: P(y | x) changes, P(x) does not).
"""

from __future__ import annotations

import itertools
import pickle
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri
from sklearn.calibration import CalibratedClassifierCV

from bench.performance_estimation_core import Stream, stream
from feature_repo.names import FEATURES
from services.training.domain.model import build_pipeline
from services.training.domain.policy import ModelParams
from workbench.demo_data import applicant_generator

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".local" / "bench" / "performance_estimation"
TRAIN = 2000
POOL_FACTOR = 8  # fresh applicants per selected one after a covariate shift
RISKY_CHECKING = "status_of_existing_checking_account"  # codes ordered safe -> risky by the generator
# Shift cases: name -> (features tilted, sd); a leading "-" tilts the feature down.
SHIFTS: dict[str, tuple[tuple[str, ...], float]] = {
    "duration & amount +0.5 sd": (("duration_in_month", "credit_amount"), 0.5),
    "duration & amount +1.0 sd": (("duration_in_month", "credit_amount"), 1.0),
    "duration & amount +1.5 sd": (("duration_in_month", "credit_amount"), 1.5),
    "checking, duration, amount, -age +1.0 sd": (
        (RISKY_CHECKING, "duration_in_month", "credit_amount", "-age_in_years"),
        1.0,
    ),
}
DEMO_CASE = "credit_amount x1.6, labels kept (demo injection)"
AGRAWAL_SWITCHES = (2, 4, 6)  # labels from these functions after the change (trained on 0)


class CreditModel:
    """The platform's pipeline, calibrated, trained on fresh applicants of one seed."""

    def __init__(self, seed: int) -> None:
        self.sampler = applicant_generator().sampler(10_000 + seed)
        frame, truth = self.draw(TRAIN)
        pipeline = build_pipeline(list(FEATURES), ModelParams(seed=seed))
        self.model = CalibratedClassifierCV(pipeline, method="sigmoid", cv=3).fit(frame, truth)
        codes = applicant_generator().columns
        self.levels = {c.name: {lv: i for i, lv in enumerate(c.levels or ())} for c in codes}

    def draw(self, n: int, sampler: Any = None) -> tuple[pd.DataFrame, np.ndarray]:
        rows = (sampler or self.sampler).take(n)
        frame = pd.DataFrame([r for r, _ in rows])[list(FEATURES)]
        return frame, np.array([label == "bad" for _, label in rows])

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(frame)[:, 1], dtype=float)

    def normal_scores(self, frame: pd.DataFrame, feature: str) -> np.ndarray:
        """The feature's values as normal scores within `frame` (categoricals by their risk code)."""
        values = frame[feature]
        if self.levels[feature]:
            values = values.map(self.levels[feature])
        ranks = values.astype(float).rank().to_numpy()
        return np.asarray(ndtri((ranks - 0.5) / len(ranks)))


@cache
def credit_model(seed: int) -> CreditModel:
    return CreditModel(seed)


def tilted(
    pool: pd.DataFrame,
    model: CreditModel,
    features: tuple[str, ...],
    sd: float,
    n: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, float]]:
    """Indices of `n` pool rows selected with weight exp(sd * sum of normal scores) (Efraimidis-
    Spirakis keys: without replacement), and the realised mean normal score of each feature."""
    scores = {
        f.lstrip("-"): model.normal_scores(pool, f.lstrip("-")) * (-1 if f[0] == "-" else 1) for f in features
    }
    log_w = sd * np.clip(sum(scores.values()), -3 * len(features), 3 * len(features))
    keys = np.log(rng.random(len(pool))) / np.exp(log_w - log_w.max())
    chosen = np.sort(np.argsort(-keys)[:n])
    return chosen, {f: round(float(s[chosen].mean()), 2) for f, s in scores.items()}


def credit_streams(seed: int, before: int, after: int) -> list[Stream]:
    """The shift cases of one seed (same model, same pre-change applicants) and the demo injection."""
    model = credit_model(seed)
    rng = np.random.default_rng(seed)
    pre, pre_truth = model.draw(before)
    pre_p = model.score(pre)
    pool, pool_truth = model.draw(after * POOL_FACTOR)
    pool_p = model.score(pool)
    out = []
    for name, (features, sd) in SHIFTS.items():
        chosen, shift = tilted(pool, model, features, sd, after, rng)
        p, truth = np.r_[pre_p, pool_p[chosen]], np.r_[pre_truth, pool_truth[chosen]]
        out.append(stream(name, p, truth, before, realised_shift_sd=shift))
    demo = pool.iloc[:after].copy()
    demo["credit_amount"] = demo["credit_amount"] * 1.6
    p, truth = np.r_[pre_p, model.score(demo)], np.r_[pre_truth, pool_truth[:after]]
    out.append(stream(DEMO_CASE, p, truth, before))
    return out


def credit_stationary(seed: int, n: int) -> Stream:
    model = credit_model(seed)
    frame, truth = model.draw(n)
    return stream("German credit, stationary", model.score(frame), truth, None)


def credit_reference(seed: int, n: int) -> Stream:
    """A labelled sample of the pre-change population for NannyML's fit (its reference period)."""
    model = credit_model(seed)
    frame, truth = model.draw(n, applicant_generator().sampler(20_000 + seed))
    return stream("reference", model.score(frame), truth, None)


def agrawal_rows(function: int, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` rows of Agrawal `function` (river), features as a matrix; cached (generation is
    slow): a cached longer run of the same function and seed serves as well."""
    for path in CACHE.glob(f"agrawal-{function}-{seed}-*.pkl"):
        if int(path.stem.rsplit("-", 1)[1]) >= n:
            x, y = pickle.loads(path.read_bytes())
            return x[:n], y[:n]
    from river.datasets import synth

    rows = list(itertools.islice(synth.Agrawal(classification_function=function, seed=seed), n))
    x = np.array([list(r.values()) for r, _ in rows], dtype=float)
    y = np.array([bool(label) for _, label in rows])
    path = CACHE / f"agrawal-{function}-{seed}-{n}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps((x, y)))
    return x, y


def agrawal_truth(function: int, x: np.ndarray, seed: int) -> np.ndarray:
    """Labels of `function` for the rows `x`: the concept switches, the applicants stay."""
    from river.datasets import synth

    generator = synth.Agrawal(classification_function=function, seed=seed)
    keys = ("salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan")
    functions = generator._classification_functions
    return np.array([bool(functions[function](*row)) for row in x[:, : len(keys)]])


def agrawal_streams(seed: int, before: int, after: int, reference: int) -> tuple[list[Stream], Stream]:
    """The three switches of one seed (same model, same rows), and a labelled pre-change sample."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    train = TRAIN * 2
    x, y = agrawal_rows(0, 100 + seed, train + reference + before + after)
    booster = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    model = CalibratedClassifierCV(booster, method="sigmoid", cv=3).fit(x[:train], y[:train])
    p = model.predict_proba(x[train:])[:, 1]
    ref = stream("reference", p[:reference], y[train : train + reference], None)
    p, served, y = p[reference:], x[train + reference :], y[train + reference :]
    out = []
    for function in AGRAWAL_SWITCHES:
        truth = np.r_[y[:before], agrawal_truth(function, served[before:], seed)]
        out.append(stream(f"Agrawal 0 -> {function}", p, truth, before))
    return out, ref
