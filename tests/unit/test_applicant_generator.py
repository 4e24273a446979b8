"""The applicant generator: new rows, not copies, with German credit's marginals, prior and label
relationship; deterministic for a seed."""

from __future__ import annotations

import random
from statistics import mean
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from services.training.domain.model import build_pipeline, input_features
from services.training.domain.policy import GatePolicy
from workbench.applicant_generator import ApplicantGenerator
from workbench.demo_data import LABEL_FIELD, ApplicationStream, DriftSpec, applicant_generator, german_credit

FEATURES = [name for name in german_credit()[0] if name != LABEL_FIELD]


def drawn(n: int, seed: int, generator: ApplicantGenerator | None = None) -> list[dict[str, Any]]:
    sampler = (generator or applicant_generator()).sampler(seed)
    return [record | {LABEL_FIELD: label} for record, label in sampler.take(n)]


def test_the_same_seed_draws_the_same_applicants_and_another_seed_others() -> None:
    first, again, other = drawn(300, seed=1), drawn(300, seed=1), drawn(300, seed=2)
    assert first == again
    assert sum(a == b for a, b in zip(first, other, strict=True)) == 0


def test_values_have_the_real_types_ranges_and_levels() -> None:
    real = german_credit()
    seen = {name: [r[name] for r in real] for name in FEATURES}
    levels = {name: set(values) for name, values in seen.items() if isinstance(values[0], str)}
    ranges = {name: (min(v), max(v)) for name, v in seen.items() if name not in levels}
    for row in drawn(3000, seed=3):
        assert set(row) == set(real[0]) and row[LABEL_FIELD] in ("good", "bad")
        for name, allowed in levels.items():
            assert isinstance(row[name], str) and row[name] in allowed, name
        for name, (low, high) in ranges.items():
            assert type(row[name]) is int and low <= row[name] <= high, name


def test_the_bad_share_is_the_real_one() -> None:
    rows = drawn(5000, seed=4)
    assert mean(r[LABEL_FIELD] == "bad" for r in rows) == pytest.approx(0.3, abs=0.02)


def test_applicants_are_new_rows_not_copies() -> None:
    key = [tuple(r[n] for n in FEATURES) for r in german_credit()]
    rows = [tuple(r[n] for n in FEATURES) for r in drawn(5000, seed=5)]
    assert mean(row in set(key) for row in rows) < 0.005
    assert len(set(rows)) > 0.99 * len(rows)  # nor copies of each other
    amounts = {r["credit_amount"] for r in german_credit()}
    assert mean(r[1] not in amounts for r in rows) > 0.5  # continuous values are not only real ones


def real_auc_of_a_model_trained_on(rows: list[dict[str, Any]]) -> float:
    policy = GatePolicy()
    inputs = input_features(policy)
    train, real = pd.DataFrame(rows), pd.DataFrame(german_credit())
    model = build_pipeline(inputs, policy.model).fit(train[inputs], train[LABEL_FIELD] == "bad")
    return float(roc_auc_score(real[LABEL_FIELD] == "bad", model.predict_proba(real[inputs])[:, 1]))


def test_a_model_trained_on_generated_rows_ranks_the_real_rows() -> None:
    # Measured: about 0.81 (the real data's own 10-fold AUC is 0.79); labels shuffled before the
    # fit give about 0.5, and the next test shows such a generator fails this bound.
    assert real_auc_of_a_model_trained_on(drawn(2000, seed=6)) > 0.75


def test_a_generator_fitted_to_shuffled_labels_fails_the_bound() -> None:
    rows = german_credit()
    labels = [r[LABEL_FIELD] for r in rows]
    random.Random(0).shuffle(labels)
    broken = ApplicantGenerator([r | {LABEL_FIELD: y} for r, y in zip(rows, labels, strict=True)])
    assert real_auc_of_a_model_trained_on(drawn(2000, 6, broken)) < 0.65


def overdrawn_share_by_class(frame: pd.DataFrame) -> dict[str, float]:
    overdrawn = frame["status_of_existing_checking_account"] == "... < 0 DM"
    return {str(k): float(v) for k, v in overdrawn.groupby(frame[LABEL_FIELD]).mean().items()}


def test_each_class_keeps_its_own_feature_distribution() -> None:
    real = overdrawn_share_by_class(pd.DataFrame(german_credit()))  # bad 0.45, good 0.20
    fake = pd.DataFrame(drawn(6000, seed=7))
    assert overdrawn_share_by_class(fake) == pytest.approx(real, abs=0.03)
    assert np.corrcoef(fake["duration_in_month"], fake["credit_amount"])[0, 1] > 0.4  # real: 0.62


def test_hostile_input_is_refused() -> None:
    rows = german_credit()
    with pytest.raises(ValueError):
        ApplicantGenerator([r for r in rows if r[LABEL_FIELD] == "good"])
    with pytest.raises(ValueError):
        ApplicantGenerator([r | {LABEL_FIELD: "maybe"} for r in rows])
    with pytest.raises(ValueError):
        applicant_generator().sampler(1).draw("Bad")


def test_prior_shift_draws_each_applicant_from_the_chosen_class() -> None:
    apps = ApplicationStream(DriftSpec("prior_shift", at=0, bad_share=1.0), seed=9).take(2000)
    assert all(a.label == "bad" for a in apps)
    overdrawn = mean(a.record["status_of_existing_checking_account"] == "... < 0 DM" for a in apps)
    assert overdrawn == pytest.approx(0.45, abs=0.04)  # the bad class's share (135 / 300), not 0.27


def test_label_flip_flips_about_the_given_share_of_the_group_only() -> None:
    plain = ApplicationStream(seed=10).take(3000)
    drifted = ApplicationStream(DriftSpec("label_flip", at=1000, flip_probability=0.5), seed=10).take(3000)
    flipped = [a.label != b.label for a, b in zip(plain, drifted, strict=True)]
    group = [a.record["foreign_worker"] == "yes" for a in plain]
    assert [a.record for a in plain] == [b.record for b in drifted]
    assert not any(flipped[:1000]) and not any(f for f, g in zip(flipped, group, strict=True) if not g)
    in_group = [f for f, g in zip(flipped[1000:], group[1000:], strict=True) if g]
    assert mean(in_group) == pytest.approx(0.5, abs=0.05)


def test_the_stream_never_repeats_an_applicant() -> None:
    apps = ApplicationStream(seed=11).take(4000)
    features = [tuple(a.record[n] for n in FEATURES) for a in apps]
    assert len(set(features)) > 0.99 * len(features)
