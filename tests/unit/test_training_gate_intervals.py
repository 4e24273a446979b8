"""The paired-bootstrap gate: its intervals are right, and it gives each of its three verdicts
(promote, reject, not enough evidence) where the evidence says so -- including where the old
fixed-threshold gate decided on noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from services.training.domain.bootstrap import resample_counts, weighted_auc
from services.training.domain.gate import decide
from services.training.domain.model import evaluate
from services.training.domain.policy import GatePolicy

POLICY = GatePolicy()
FIXED = POLICY.model_copy(update={"method": "fixed_threshold"})


def holdout(n: int, seed: int = 3, female_share: float = 0.35) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    female = rng.random(n) < female_share
    return pd.DataFrame(
        {
            "label": (rng.random(n) < 0.3).astype("int64"),
            "personal_status_and_sex": np.where(female, "female : divorced", "male : single"),
            "age_in_years": rng.integers(19, 75, n),
        }
    )


def informative(frame: pd.DataFrame, strength: float, seed: int = 5) -> np.ndarray:
    """P(bad) scores that separate the classes by `strength` standard deviations."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=len(frame)) + strength * frame["label"].to_numpy() - 1.2
    return np.asarray(1 / (1 + np.exp(-z)))


def outcomes(verdict_checks: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {check.name: check.outcome for check in verdict_checks}


def test_the_weighted_auc_of_a_resample_is_the_auc_of_the_rows_it_drew() -> None:
    frame = holdout(300)
    y, p = frame["label"].to_numpy(), np.round(informative(frame, 1.0), 2)  # rounded: ties too
    counts = resample_counts(len(y), 5, seed=1)
    for row, auc in zip(counts, weighted_auc(y, p, counts), strict=True):
        drawn = np.repeat(np.arange(len(y)), row.astype(int))
        assert auc == pytest.approx(roc_auc_score(y[drawn], p[drawn]), abs=1e-12)


def test_a_clearly_good_first_model_is_promoted_with_its_intervals() -> None:
    frame = holdout(2000)
    verdict = decide(evaluate(frame, informative(frame, 2.0), POLICY), POLICY)
    assert verdict.outcome == "promote" and verdict.passed
    evidence = verdict.evidence
    assert evidence.verdict == "promote" and evidence.confidence == 0.95 and evidence.holdout_rows == 2000
    assert evidence.method is not None and "paired bootstrap" in evidence.method
    for check in evidence.checks:
        if check.value is not None:
            assert check.low is not None and check.high is not None
            assert check.low <= check.value <= check.high, check


def test_a_comparison_on_a_small_holdout_is_not_enough_evidence_where_the_old_gate_promoted() -> None:
    frame = holdout(80, seed=4)
    champion_scores = informative(frame, 1.5, seed=104)
    candidate_scores = 0.5 * champion_scores + 0.5 * informative(frame, 1.5, seed=204)
    candidate, champion = evaluate(frame, candidate_scores, POLICY), evaluate(frame, champion_scores, POLICY)
    old, new = decide(candidate, FIXED, champion, "1"), decide(candidate, POLICY, champion, "1")
    assert old.outcome == "promote"  # a point estimate within the margin, on 80 rows
    assert new.outcome == "not_enough_evidence" and not new.passed
    check = next(c for c in new.evidence.checks if c.name == "auc_not_worse")
    assert check.outcome == "inconclusive" and check.low is not None and check.high is not None
    assert check.low < -POLICY.versus_champion.auc_epsilon < check.high  # the interval straddles the margin


def test_floors_give_the_benefit_of_the_doubt_unless_the_policy_asks_for_evidence() -> None:
    frame = holdout(60, seed=8)
    scores = informative(frame, 1.0, seed=9)
    strict = POLICY.model_copy(
        update={"absolute": POLICY.absolute.model_copy(update={"require_evidence": True})}
    )
    lenient, sure = (
        decide(evaluate(frame, scores, POLICY), POLICY),
        decide(evaluate(frame, scores, strict), strict),
    )
    straddling = [
        c for c in lenient.evidence.checks
        if c.name in ("auc_min", "log_loss_max") and c.low < c.threshold < c.high  # type: ignore[operator]
    ]  # fmt: skip
    assert straddling and all(c.outcome == "pass" for c in straddling)  # the estimate clears the floor
    assert sure.outcome == "not_enough_evidence"
    assert {c.name: c.outcome for c in sure.evidence.checks}[straddling[0].name] == "inconclusive"
    useless = decide(
        evaluate(frame, np.full(len(frame), 0.3) + 0.01 * np.arange(len(frame)) % 0.02, POLICY), POLICY
    )
    assert useless.outcome in ("reject", "not_enough_evidence")  # a floor missed is never a promotion


def test_a_candidate_surely_worse_than_the_champion_is_rejected() -> None:
    frame = holdout(1200)
    champion = evaluate(frame, informative(frame, 2.0), POLICY)
    candidate = evaluate(frame, informative(frame, 0.8, seed=6), POLICY)
    verdict = decide(candidate, POLICY, champion, "4")
    assert verdict.outcome == "reject" and outcomes(verdict.evidence.checks)["auc_not_worse"] == "fail"
    check = next(c for c in verdict.evidence.checks if c.name == "auc_not_worse")
    assert check.high is not None and check.high < -POLICY.versus_champion.auc_epsilon
    assert verdict.evidence.champion_version == "4" and any(
        r.startswith("auc_not_worse") for r in verdict.reasons
    )


def test_a_candidate_identical_to_the_champion_passes_the_paired_comparison_exactly() -> None:
    frame = holdout(300)
    scores = informative(frame, 2.0)
    one = evaluate(frame, scores, POLICY)
    verdict = decide(one, POLICY, evaluate(frame, scores.copy(), POLICY), "1")
    check = next(c for c in verdict.evidence.checks if c.name == "auc_not_worse")
    assert (check.value, check.low, check.high, check.outcome) == (0.0, 0.0, 0.0, "pass")  # paired: no noise


def test_unfair_decisions_are_rejected_when_sure_and_inconclusive_when_not() -> None:
    def biased(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        frame = holdout(n, seed=seed)
        female = frame["personal_status_and_sex"].str.startswith("female").to_numpy()
        z = np.random.default_rng(seed).normal(size=n) + 2.0 * frame["label"].to_numpy() - 1.8
        return frame, 1 / (1 + np.exp(-(z + 1.5 * female)))  # women scored riskier: fewer approved

    big = decide(evaluate(*biased(2000, 4), POLICY), POLICY)
    dpd = next(c for c in big.evidence.checks if c.name == "dpd_sex")
    assert big.outcome == "reject" and dpd.outcome == "fail" and dpd.low is not None and dpd.low > 0.15
    assert big.short_only_on_fairness()
    frame, scores = biased(2000, 4)
    women = np.flatnonzero(frame["personal_status_and_sex"].str.startswith("female").to_numpy())
    few = np.sort(np.r_[women[:32], np.flatnonzero(~frame.index.isin(women))[:60]])  # 32 women, 60 men
    small = frame.iloc[few].reset_index(drop=True)
    verdict = decide(evaluate(small, scores[few], POLICY), POLICY)
    dpd = next(c for c in verdict.evidence.checks if c.name == "dpd_sex")
    assert dpd.value is not None and dpd.low is not None and dpd.high is not None
    assert dpd.low <= 0.15 < dpd.high  # measured, but 32 women cannot say surely
    assert dpd.outcome == ("inconclusive" if dpd.value > 0.15 else "pass")
    assert verdict.outcome != "promote" or dpd.value <= 0.15


def test_fairness_can_require_evidence_of_fairness() -> None:
    frame = holdout(120, seed=12)
    female = frame["personal_status_and_sex"].str.startswith("female").to_numpy()
    rank = np.arange(len(frame)) % 10  # approve 7 in 10 women and 8 in 10 men: a gap of 0.10
    approved = np.where(female, rank < 7, rank < 8)
    scores = np.where(approved, 0.3, 0.7) + 0.01 * frame["label"].to_numpy()
    strict = POLICY.model_copy(
        update={"fairness": POLICY.fairness.model_copy(update={"require_evidence_of_fairness": True})}
    )
    lenient_checks = outcomes(decide(evaluate(frame, scores, POLICY), POLICY).evidence.checks)
    strict_checks = outcomes(decide(evaluate(frame, scores, strict), strict).evidence.checks)
    assert lenient_checks["dpd_sex"] == "pass"  # the estimate is within the limit
    assert strict_checks["dpd_sex"] == "inconclusive"  # but its interval on 120 rows is not


def test_the_verdict_is_reproducible_for_a_seed() -> None:
    frame = holdout(500)
    ev = evaluate(frame, informative(frame, 1.5), POLICY)
    one, two = decide(ev, POLICY), decide(ev, POLICY)
    assert one.evidence == two.evidence
    other = decide(ev, POLICY.model_copy(update={"bootstrap_seed": 99}))
    assert [c.low for c in other.evidence.checks] != [c.low for c in one.evidence.checks]
