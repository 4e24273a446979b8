"""The gate's decisions (pass, fail, first model, fairness) and the trainer with fakes: too few labels,
one class, bad params, a champion it cannot beat."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.events import TrainingRequested, TrainingRequestedPayload
from services.training.adapters.state import TrainingState
from services.training.domain.fairness import GroupGap
from services.training.domain.gate import decide
from services.training.domain.model import Evaluation
from services.training.domain.policy import GatePolicy
from services.training.trainer import Trainer
from tests.unit.test_training_support import (
    FakeRegistry,
    FakeSource,
    constant,
    feature_frame,
    label_frame,
    oracle,
)

POLICY = GatePolicy()
FAIR = {
    name: GroupGap(0.05, {"a": 0.8, "b": 0.75})
    for name in ("dpd_sex", "eod_sex", "dpd_age_band", "eod_age_band")
}


def evaluation(auc: float, log_loss: float, **gaps: float | None) -> Evaluation:
    fairness = dict(FAIR) | {name: GroupGap(v, {"a": 0.5}) for name, v in gaps.items()}
    return Evaluation({"auc": auc, "log_loss": log_loss}, fairness)


def failed(verdict_checks: list) -> list[str]:  # type: ignore[type-arg]
    return [check.name for check in verdict_checks if not check.passed]


def test_first_model_passing_the_absolute_floor_is_promoted() -> None:
    verdict = decide(evaluation(0.70, 0.55), POLICY)
    assert (
        verdict.passed
        and verdict.evidence.champion_metrics is None
        and verdict.evidence.champion_version is None
    )
    assert {c.name for c in verdict.evidence.checks} == {
        "auc_min", "log_loss_max", "dpd_sex", "eod_sex", "dpd_age_band", "eod_age_band",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("auc", "log_loss", "failing"),
    [(0.60, 0.55, ["auc_min"]), (0.70, 0.65, ["log_loss_max"]), (0.5, 0.7, ["auc_min", "log_loss_max"])],
)
def test_first_model_below_the_floor_is_rejected(auc: float, log_loss: float, failing: list[str]) -> None:
    verdict = decide(evaluation(auc, log_loss), POLICY)
    assert not verdict.passed and failed(verdict.evidence.checks) == failing
    assert all(reason.startswith(tuple(failing)) for reason in verdict.reasons)


def test_a_candidate_as_good_as_the_champion_within_the_margins_passes() -> None:
    verdict = decide(evaluation(0.75, 0.50), POLICY, evaluation(0.76, 0.49), "3")
    assert verdict.passed and verdict.evidence.champion_version == "3"
    check = next(c for c in verdict.evidence.checks if c.name == "auc_not_worse")
    assert check.threshold == pytest.approx(0.74) and check.value == 0.75


@pytest.mark.parametrize(
    ("candidate", "failing"),
    [(evaluation(0.72, 0.50), ["auc_not_worse"]), (evaluation(0.76, 0.53), ["log_loss_not_worse"])],
)
def test_a_candidate_worse_than_the_champion_is_rejected(candidate: Evaluation, failing: list[str]) -> None:
    verdict = decide(candidate, POLICY, evaluation(0.76, 0.50), "3")
    assert not verdict.passed and failed(verdict.evidence.checks) == failing


def test_unfair_decisions_are_rejected_and_unmeasurable_groups_are_said_so() -> None:
    verdict = decide(evaluation(0.8, 0.4, dpd_sex=-0.3, eod_age_band=None), POLICY)
    assert not verdict.passed and failed(verdict.evidence.checks) == ["dpd_sex"]
    dpd = next(c for c in verdict.evidence.checks if c.name == "dpd_sex")
    assert dpd.value == 0.3 and dpd.threshold == 0.15  # the absolute difference is checked
    eod = next(c for c in verdict.evidence.checks if c.name == "eod_age_band")
    assert eod.passed and eod.value is None and "not measured" in eod.detail


# --- the trainer with fakes ---------------------------------------------------------------------


def request(**params: object) -> TrainingRequested:
    payload = TrainingRequestedPayload(
        model_name="credit", reason="manual", requested_by="tests", params=params
    )  # type: ignore[arg-type]
    return TrainingRequested.create(payload, producer="tests")


def trainer_with(
    tmp_path: Path, features: pd.DataFrame, labels: pd.DataFrame, policy: GatePolicy = POLICY
) -> tuple[Trainer, FakeRegistry, FakeSource]:
    state = TrainingState(tmp_path / "state.db")
    for row in labels.itertuples(index=False):
        state.add_label(str(uuid.uuid4()), row[0], int(row[1]), row[2].to_pydatetime())
    registry, source = FakeRegistry(), FakeSource(features)
    return Trainer(state, source, registry, lambda: policy, "test-code"), registry, source


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return feature_frame(1500)


def test_too_few_labels_is_a_rejection_without_training(tmp_path: Path, features: pd.DataFrame) -> None:
    trainer, registry, source = trainer_with(tmp_path, features, label_frame(features).head(150))
    outcome = trainer.run(request())
    assert outcome.status == "rejected" and outcome.model_version is None and outcome.run_id is None
    assert outcome.reasons == ["too few labels: 150 labelled entities, the policy needs 200"]
    assert source.calls == 0 and not registry.candidates


def test_too_few_usable_rows_after_the_join_is_a_rejection(tmp_path: Path, features: pd.DataFrame) -> None:
    labels = label_frame(features).head(400)
    labels.loc[labels.index[:250], "event_timestamp"] -= timedelta(days=1)  # labels before the features
    trainer, registry, _ = trainer_with(tmp_path, features, labels)
    outcome = trainer.run(request())
    assert outcome.status == "rejected" and "too few usable rows: 150 of 400" in outcome.reasons[0]
    assert outcome.counts["rows_dropped_by_store"] == 250 and not registry.candidates


def test_a_single_class_is_a_rejection(tmp_path: Path, features: pd.DataFrame) -> None:
    labels = label_frame(features).assign(label=0)
    outcome = trainer_with(tmp_path, features, labels)[0].run(request())
    assert outcome.status == "rejected" and "single class" in outcome.reasons[0]


def test_unknown_or_invalid_params_are_a_rejection(tmp_path: Path, features: pd.DataFrame) -> None:
    trainer = trainer_with(tmp_path, features, label_frame(features))[0]
    for params, fragment in (({"depth": 3}, "depth"), ({"C": -1.0}, "C")):
        outcome = trainer.run(request(**params))
        assert outcome.status == "rejected" and "invalid training params" in outcome.reasons[0]
        assert fragment in outcome.reasons[0]


def test_first_model_is_promoted_then_a_champion_it_cannot_beat_keeps_the_alias(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    trainer, registry, _ = trainer_with(tmp_path, features, label_frame(features))
    first = trainer.run(request())
    assert first.status == "promoted" and first.model_version == "1" and registry.alias == "1"
    assert first.previous_version is None and first.verdict and first.verdict.passed
    candidate = registry.candidates[0]
    assert candidate.inputs == [f for f in candidate.inputs if f not in POLICY.exclude_features]
    assert "personal_status_and_sex" not in candidate.inputs and len(candidate.inputs) == 18
    assert (
        candidate.example["age_in_years"].dtype == np.int64 and candidate.tags["code_version"] == "test-code"
    )
    assert (
        candidate.metrics["rows_usable"] == 1500
        and candidate.dataset_sha256 == first.lineage["dataset_sha256"]
    )
    assert first.lineage["window_end"] < first.lineage["holdout_start"]
    calibration = candidate.calibration  # every candidate is calibrated, the run logs how
    assert calibration is not None and calibration.fitted_rows == first.lineage["train_rows"]
    assert candidate.metrics["calibration_ece_after"] == calibration.holdout_ece_after
    assert candidate.params["calibration_method"] == "platt"
    reliability = candidate.artifacts["calibration/reliability.json"]
    assert sum(reliability["calibrated"]["rows"]) == candidate.metrics["holdout_rows"]

    same = trainer.run(request())  # same data, same seed: as good as the champion, promoted
    assert same.status == "promoted" and same.previous_version == "1" and registry.alias == "2"

    registry.champion_score = oracle(features)
    beaten = trainer.run(request())
    assert beaten.status == "rejected" and registry.alias == "2" and beaten.model_version == "3"
    assert any(r.startswith("auc_not_worse") for r in beaten.reasons)
    assert beaten.verdict and beaten.verdict.evidence.champion_version == "2"
    assert registry.gates == [("1", True), ("2", True), ("3", False)]


def test_a_useless_candidate_fails_even_against_a_constant_champion(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    labels = label_frame(features)
    labels["label"] = labels["label"].sample(frac=1, random_state=4).to_numpy()  # labels carry no signal
    trainer, registry, _ = trainer_with(tmp_path, features, labels)
    registry.alias, registry.champion_score = "9", constant(0.3)
    outcome = trainer.run(request())
    assert outcome.status == "rejected" and "auc_min" in " ".join(outcome.reasons) and registry.alias == "9"
