"""Fairness mitigation: a candidate short on fairness only is mitigated (fairlearn), both candidates
are logged with their accuracy and fairness side by side, and the gate decides on the mitigated one."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from contracts.events import TrainingRequested, TrainingRequestedPayload
from services.training.adapters.state import TrainingState
from services.training.domain.mitigation import soft_mixture
from services.training.domain.policy import GatePolicy
from services.training.trainer import Trainer
from tests.unit.test_training_support import FakeRegistry, FakeSource, feature_frame, label_frame

# The model may see the sex column here (a proxy the real policy excludes), so that labels biased
# against one group teach it the bias.
SEES_SEX = GatePolicy(exclude_features=("foreign_worker",))


def biased_labels(features: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """Two in three good women relabelled bad: the training data itself is biased against women."""
    labels = label_frame(features)
    women = features["personal_status_and_sex"].str.startswith("female").to_numpy()
    flip = (
        women & (labels["label"].to_numpy() == 0) & (np.random.default_rng(seed).random(len(labels)) < 0.67)
    )
    labels.loc[flip, "label"] = 1
    return labels


def trainer_for(
    tmp_path: Path, features: pd.DataFrame, labels: pd.DataFrame, policy: GatePolicy
) -> tuple[Trainer, FakeRegistry]:
    state = TrainingState(tmp_path / "state.db")
    for row in labels.itertuples(index=False):
        state.add_label(str(uuid.uuid4()), row[0], int(row[1]), row[2].to_pydatetime())
    registry = FakeRegistry()
    return Trainer(state, FakeSource(features), registry, lambda: policy, "test-code"), registry


def request() -> TrainingRequested:
    payload = TrainingRequestedPayload(model_name="credit", reason="manual", requested_by="tests")
    return TrainingRequested.create(payload, producer="tests")


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return feature_frame(2500, seed=5)


def test_a_candidate_unfair_only_is_mitigated_and_the_gate_decides_on_the_mitigated_one(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    trainer, registry = trainer_for(tmp_path, features, biased_labels(features), SEES_SEX)
    outcome = trainer.run(request())
    assert len(registry.candidates) == 2, outcome.reasons  # the unmitigated one, then the mitigated one
    first, second = registry.evidence
    assert first.verdict != "promote" and {c.name for c in first.checks if not c.passed} <= {
        "dpd_sex", "eod_sex", "dpd_age_band", "eod_age_band",
    }  # fmt: skip
    mitigated = registry.candidates[1]
    assert (
        mitigated.tags["mitigation_of_run"] == "run-1"
        and "ExponentiatedGradient" in mitigated.tags["mitigation"]
    )
    assert outcome.model_version == "2" and outcome.lineage["mitigation_of_version"] == "1"
    assert registry.candidates[0].calibration is not None  # both calibrated, the mitigated one in-sample
    assert mitigated.calibration is not None and mitigated.calibration != registry.candidates[0].calibration
    side = second.mitigation
    assert (
        side is not None
        and side["unmitigated_version"] == "1"
        and side["unmitigated_verdict"] == first.verdict
    )
    at_fault = "dpd_sex" if side["unmitigated_dpd_sex"] > 0.15 else "eod_sex"  # type: ignore[operator]
    before, after = side[f"unmitigated_{at_fault}"], side[f"mitigated_{at_fault}"]
    assert before is not None and after is not None and abs(after) < abs(before)  # type: ignore[arg-type]
    assert {"unmitigated_auc", "mitigated_auc", "mitigated_log_loss"} <= set(side)
    assert outcome.verdict is not None and outcome.verdict.evidence.mitigation == side
    assert registry.gates[0] == ("1", False) and registry.gates[1][0] == "2"
    assert (outcome.status == "promoted") == (second.verdict == "promote")


def test_without_mitigation_the_unfair_candidate_is_simply_not_promoted(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    policy = SEES_SEX.model_copy(
        update={"fairness": SEES_SEX.fairness.model_copy(update={"mitigation": "none"})}
    )
    trainer, registry = trainer_for(tmp_path, features, biased_labels(features), policy)
    outcome = trainer.run(request())
    assert outcome.status == "rejected" and len(registry.candidates) == 1 and registry.alias is None
    assert outcome.reasons[0] in ("verdict reject", "verdict not_enough_evidence")
    assert any(r.startswith(("dpd_sex", "eod_sex")) for r in outcome.reasons)


def test_the_soft_mixture_is_the_weighted_mean_of_its_members_and_pickles() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] + rng.normal(size=300) > 0).astype(int)
    a, b = LogisticRegression().fit(x, y), LogisticRegression(C=0.01).fit(x[:, :3] * -1, y)
    mixture = pickle.loads(pickle.dumps(soft_mixture([("a", a), ("b", b)], [0.7, 0.3])))
    expected = 0.7 * a.predict_proba(x)[:, 1] + 0.3 * b.predict_proba(x)[:, 1]
    assert np.allclose(mixture.predict_proba(x)[:, 1], expected)
