"""The retraining rules on drift events, one rule at a time, and their policy fields (validated)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.events import DriftDetected, DriftDetectedPayload
from services.training.domain.policy import GatePolicy, load_policy
from services.training.domain.retraining import RetrainState, change_point, decide_retrain, retrain_window
from services.training.errors import PolicyError
from services.training.settings import DEFAULT_POLICY

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
ON = GatePolicy(retrain_on_drift=True)
READY = RetrainState(model_name="credit", paused=False, new_labels=500)


def drift(kind: str = "concept", model: str | None = "credit") -> DriftDetected:
    payload = DriftDetectedPayload(
        kind=kind, feature="credit_amount" if kind == "data" else None, detector="ADWIN",
        statistic=0.4, window_start=NOW - timedelta(hours=1), window_end=NOW,
        window_size=100, model_name=model,
    )  # fmt: skip
    return DriftDetected.create(payload, producer="drift")


def state(**changes: Any) -> RetrainState:
    return RetrainState(**{**READY.__dict__, **changes})


@pytest.mark.parametrize("kind", ["concept", "prediction"])
def test_a_default_kind_with_enough_labels_and_no_recent_retrain_goes(kind: str) -> None:
    decision = decide_retrain(drift(kind), READY, ON, NOW)
    assert decision.go and decision.reason == "go"
    assert decide_retrain(drift(kind, model=None), READY, ON, NOW).go  # drift of no model in particular


def test_the_master_switch_off_refuses_everything() -> None:
    decision = decide_retrain(drift(), READY, GatePolicy(), NOW)
    assert not decision.go and decision.reason == "off"


def test_another_models_drift_is_refused() -> None:
    assert decide_retrain(drift(model="fraud"), READY, ON, NOW).reason == "other_model"


def test_paused_refuses() -> None:
    assert decide_retrain(drift(), state(paused=True), ON, NOW).reason == "paused"


def test_data_drift_is_refused_by_default_and_allowed_when_listed() -> None:
    assert decide_retrain(drift("data"), READY, ON, NOW).reason == "kind"
    policy = GatePolicy(retrain_on_drift=True, retrain_on_kinds=("data",))
    assert decide_retrain(drift("data"), READY, policy, NOW).go
    assert decide_retrain(drift("concept"), READY, policy, NOW).reason == "kind"


def test_too_few_new_labels_refuses() -> None:
    policy = GatePolicy(retrain_on_drift=True, min_new_labels=100)
    decision = decide_retrain(drift(), state(new_labels=99), policy, NOW)
    assert decision.reason == "too_few_new_labels" and "99 new labels" in decision.detail
    assert decide_retrain(drift(), state(new_labels=100), policy, NOW).go


def test_the_cooldown_refuses_until_it_has_passed() -> None:
    policy = GatePolicy(retrain_on_drift=True, retrain_cooldown_s=600)
    recent = state(last_retrain_at=NOW - timedelta(seconds=599))
    assert decide_retrain(drift(), recent, policy, NOW).reason == "cooldown"
    assert decide_retrain(drift(), state(last_retrain_at=NOW - timedelta(seconds=600)), policy, NOW).go


def test_the_hourly_limit_refuses() -> None:
    policy = GatePolicy(retrain_on_drift=True, retrain_cooldown_s=0, max_retrains_per_hour=2)
    assert decide_retrain(drift(), state(retrains_last_hour=2), policy, NOW).reason == "hourly_limit"
    assert decide_retrain(drift(), state(retrains_last_hour=1), policy, NOW).go
    no_retrains = GatePolicy(retrain_on_drift=True, max_retrains_per_hour=0)
    assert decide_retrain(drift(), READY, no_retrains, NOW).reason == "hourly_limit"


def test_the_window_ends_open_and_starts_drift_window_before_the_newest_label() -> None:
    assert retrain_window(ON, NOW) == (None, None)  # no drift_window_s: all the data
    policy = GatePolicy(drift_window_s=86_400)
    assert retrain_window(policy, NOW) == (NOW - timedelta(days=1), None)
    assert retrain_window(policy, None) == (None, None)  # no labels yet


@pytest.mark.parametrize(
    "line",
    [
        "retrain_on_kinds: [concept, weather]",
        "min_new_labels: -1",
        "retrain_cooldown_s: -5",
        "max_retrains_per_hour: many",
        "drift_window_s: 10",
        "retrain_on_drift: sometimes",
        "retrain_every: 3",
    ],
)
def test_bad_retraining_fields_are_refused(tmp_path: Path, line: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(line + "\n")
    with pytest.raises(PolicyError, match="is invalid"):
        load_policy(path)


def test_the_shipped_policy_retrains_on_concept_prediction_and_estimated_drift_since_the_change() -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert policy.retrain_on_drift and policy.retrain_on_kinds == ("concept", "prediction", "performance")
    assert policy.train_since_change and policy.retrain_cooldown_s > 0 and policy.max_retrains_per_hour >= 1


def test_since_a_change_point_too_few_labels_means_waiting_and_the_window_starts_there() -> None:
    policy = GatePolicy(retrain_on_drift=True, min_new_labels=100, train_since_change=True)
    decision = decide_retrain(drift(), state(new_labels=99, since_change=True), policy, NOW)
    assert not decision.go and decision.reason == "waiting_for_labels"
    assert "since the change point" in decision.detail
    assert change_point(drift(), policy) == NOW - timedelta(hours=1)
    assert change_point(drift(), GatePolicy(retrain_on_drift=True)) is None  # off: all or recent data
