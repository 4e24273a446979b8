"""The gate's error-rate benchmark at a tiny size: its structure, its population's truth, its intervals.

The issue's targets are not asserted here (at three repetitions they mean nothing); the bench
reports them with their intervals.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.gate_error_rates import GATES, OUTCOMES, rate, repetition, run, wilson
from bench.gate_population import KINDS
from services.training.domain.policy import GatePolicy


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    return run(repetitions=3, sizes=[300], bootstrap_samples=200, workers=1, seed=5)


def test_every_cell_holds_both_gates_and_every_candidate(tiny: dict[str, Any]) -> None:
    assert tiny["repetitions"] == 3 and tiny["sizes"] == [300]
    for gate in GATES:
        for kind in KINDS:
            cell = tiny["cells"]["300"][gate][kind]
            shares = [cell["outcomes"][o]["rate"] for o in OUTCOMES]
            assert math.isclose(sum(shares), 1.0)
            assert all(cell["outcomes"][o]["n"] == 3 for o in OUTCOMES)


def test_the_fixed_threshold_gate_only_promotes_or_rejects(tiny: dict[str, Any]) -> None:
    for kind in KINDS:
        assert tiny["cells"]["300"]["fixed_threshold"][kind]["outcomes"]["not_enough_evidence"]["count"] == 0


def test_the_candidates_true_quality_is_what_their_names_say(tiny: dict[str, Any]) -> None:
    truth, policy = tiny["truth"], GatePolicy()
    margin = policy.versus_champion.auc_epsilon
    assert abs(truth["equal"]["auc_gap"]) < margin
    assert (
        truth["worse"]["auc_gap"] < -margin
        and truth["worse"]["log_loss_gap"] > policy.versus_champion.log_loss_delta
    )
    assert truth["better"]["auc_gap"] > margin
    assert truth["biased"]["dpd_sex"] > policy.fairness.sex.max_dpd > truth["equal"]["dpd_sex"]


def test_the_targets_are_judged_on_the_estimate_and_on_the_interval(tiny: dict[str, Any]) -> None:
    judged = {(t["gate"], t["rate"]): t for t in tiny["targets"]}
    assert set(judged) == {(gate, "equal false_rejection") for gate in GATES}  # 600 and 1200 not run
    for t in judged.values():
        assert t["met"] == (t["estimate"] <= 0.05)
        assert not t["met_at_95"]  # three repetitions can never bound a rate below 5 %


def test_a_repetition_is_deterministic_for_its_seed() -> None:
    first, again = (repetition(7, seed=5, sizes=[300], bootstrap_samples=200) for _ in range(2))
    assert first == again


def test_wilson_interval_matches_known_values_and_survives_edges() -> None:
    low, high = wilson(0, 10)
    assert low == 0.0 and math.isclose(high, 0.2775, abs_tol=1e-4)
    low, high = wilson(5, 10)
    assert math.isclose(low + high, 1.0) and math.isclose(low, 0.2366, abs_tol=1e-4)
    assert wilson(10, 10)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)
    assert rate(0, 0)["rate"] is None
