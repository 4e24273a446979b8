"""Pure training logic: labels, the training-set join (rows the store dropped), time split, groups,
fairness metrics against hand-computed values, dataset hash, policy file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_repo.names import ENTITY_KEY, EVENT_TIME, FEATURES
from services.training.domain.dataset import (
    LABEL,
    LABEL_TIME,
    Window,
    age_band,
    assemble,
    dataset_sha256,
    dataset_version,
    entity_frame,
    label_value,
    sex_of,
    time_split,
)
from services.training.domain.fairness import demographic_parity_difference, equal_opportunity_difference
from services.training.domain.policy import GatePolicy, load_policy
from services.training.errors import PolicyError
from services.training.settings import DEFAULT_POLICY
from tests.unit.test_training_support import feature_frame, label_frame

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("label", "value"),
    [("bad", 1), ("good", 0), (" BAD ", 1), ("Good", 0), ("maybe", None), (1, None), ("", None)],
)
def test_label_values(label: object, value: int | None) -> None:
    assert label_value(label) == value


def test_assemble_reports_rows_the_store_dropped_and_rows_without_features() -> None:
    features = feature_frame(6)
    labels = label_frame(features)
    retrieved = features.merge(entity_frame(labels), on=ENTITY_KEY)
    retrieved = retrieved[retrieved[ENTITY_KEY] != "t-0000002"]  # the Feast file store drops this one
    retrieved.loc[retrieved[ENTITY_KEY] == "t-0000004", "housing"] = None  # and returns this one empty
    data = assemble(labels, retrieved)
    assert data.dropped_by_store == ["t-0000002"] and data.without_features == ["t-0000004"]
    assert len(data.frame) == 4 and data.counts()["rows_usable"] == 4 and data.requested == 6
    assert data.frame[ENTITY_KEY].tolist() == ["t-0000000", "t-0000001", "t-0000003", "t-0000005"]
    assert data.frame["age_in_years"].dtype == np.int64 and data.frame["credit_amount"].dtype == np.float64
    assert (
        data.frame[LABEL].tolist() == labels.set_index(ENTITY_KEY).loc[data.frame[ENTITY_KEY], LABEL].tolist()
    )


def test_assemble_applies_the_window_to_label_times() -> None:
    features = feature_frame(10)
    labels = label_frame(features)
    labels.loc[labels.index[:2], LABEL_TIME] += pd.Timedelta(days=30)  # two labels came very late
    retrieved = features.merge(entity_frame(labels), on=ENTITY_KEY)
    start, end = labels[LABEL_TIME].iloc[4], labels[LABEL_TIME].iloc[9]
    data = assemble(labels, retrieved, Window(start.to_pydatetime(), end.to_pydatetime()))
    assert data.frame[ENTITY_KEY].tolist() == [f"t-{i:07d}" for i in range(4, 9)]
    assert data.outside_window == 5  # 2, 3 labelled before; 0, 1 (late) and 9 labelled at or after the end
    since = assemble(labels, retrieved, Window(start.to_pydatetime(), None))
    late_first = ["t-0000000", "t-0000001", *(f"t-{i:07d}" for i in range(4, 10))]
    assert since.frame[ENTITY_KEY].tolist() == late_first


def test_time_split_holds_out_the_newest_rows() -> None:
    frame = feature_frame(10).sample(frac=1, random_state=3)  # shuffled on purpose
    frame[LABEL] = 0
    train, holdout = time_split(frame, 0.2)
    assert len(train) == 8 and len(holdout) == 2
    assert train[EVENT_TIME].max() < holdout[EVENT_TIME].min()
    assert holdout[ENTITY_KEY].tolist() == ["t-0000008", "t-0000009"]
    assert len(time_split(frame.head(2), 0.01)[1]) == 1  # at least one row each side
    assert len(time_split(frame.head(2), 0.99)[0]) == 1


def test_sensitive_groups() -> None:
    statuses = pd.Series(["male : single", "female : single", "male : divorced/separated", "other"])
    assert sex_of(statuses).tolist() == ["male", "female", "male", "unknown"]
    ages = pd.Series([18, 24, 25, 40, 41, 75])
    assert age_band(ages, (25, 41)).tolist() == [
        "under_25",
        "under_25",
        "25_40",
        "25_40",
        "over_40",
        "over_40",
    ]


def test_fairness_metrics_match_hand_computed_values() -> None:
    groups = np.array(["f"] * 4 + ["m"] * 6)
    approved = np.array([1, 1, 0, 0, 1, 1, 1, 1, 1, 0], dtype=bool)  # f: rows 0-3, m: rows 4-9
    bad = np.array([0, 1, 0, 1, 0, 0, 0, 1, 1, 0], dtype=bool)
    # approval rates: f 2/4 = 0.5, m 5/6 -> DPD = 5/6 - 1/2 = 1/3
    dpd = demographic_parity_difference(approved, groups, min_size=1)
    assert dpd.value == pytest.approx(1 / 3) and dpd.rates == pytest.approx({"f": 0.5, "m": 5 / 6})
    # among good applicants: f rows 0, 2 -> approved 1 of 2 = 0.5; m rows 4, 5, 6, 9 -> 3 of 4 = 0.75
    eod = equal_opportunity_difference(approved, bad, groups, min_size=1)
    assert eod.value == pytest.approx(0.25) and eod.rates == pytest.approx({"f": 0.5, "m": 0.75})
    # groups below the minimum size are left out and named; one group left: not measurable
    small = demographic_parity_difference(approved, groups, min_size=5)
    assert small.value is None and small.skipped == ["f"] and "too small: f" in small.detail()


def test_dataset_hash_is_stable_and_sensitive_to_any_value() -> None:
    frame = feature_frame(20)
    frame[LABEL] = np.arange(20) % 2
    sha = dataset_sha256(frame)
    assert sha == dataset_sha256(frame.sample(frac=1, random_state=1))  # row order does not matter
    changed = frame.copy()
    changed.loc[3, "credit_amount"] += 0.01
    assert dataset_sha256(changed) != sha
    relabelled = frame.copy()
    relabelled.loc[3, LABEL] = 1 - relabelled.loc[3, LABEL]
    assert dataset_sha256(relabelled) != sha
    assert dataset_version(frame, sha).endswith(f"-20rows-{sha[:12]}")


def test_entity_frame_has_feasts_columns() -> None:
    labels = label_frame(feature_frame(3))
    frame = entity_frame(labels)
    assert list(frame.columns) == [ENTITY_KEY, LABEL_TIME] and str(frame[LABEL_TIME].dtype).endswith("UTC]")


def test_the_shipped_policy_loads(tmp_path: Path) -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert policy.min_labels == 200 and policy.retrain_on_drift and policy.train_since_change
    assert policy.min_new_labels >= policy.min_labels  # a retrain since a change can pass the gate's floor
    assert set(policy.exclude_features) == {"personal_status_and_sex", "foreign_worker"}
    assert set(policy.exclude_features) <= set(FEATURES)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("min_labels: [1", "not valid YAML"),
        ("min_labels: 3", "invalid"),
        ("holdout_share: 1.5", "invalid"),
        ("unknown_key: 1", "invalid"),
        ("age_band_edges: [40, 25]", "increase"),
        ("fairness: {sex: {max_dpd: 2, max_eod: 0.1}}", "invalid"),
    ],
)
def test_bad_policy_files_are_refused_clearly(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=fragment):
        load_policy(path)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


def test_an_empty_policy_file_means_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("")
    assert load_policy(path) == GatePolicy()
