"""The validation gate, pure: candidate (and champion, scored on the same holdout) -> checks -> verdict.

Every candidate must pass the absolute floor (`policy.absolute`) and the fairness limits; when there is
a champion it must also not be worse than the champion by more than the policy's margins.

With `method: paired_bootstrap` (the default) each check gets a confidence interval from resamples of
the holdout, candidate and champion on the same resamples, and each check has three outcomes:
- pass: the interval lies on the right side of the threshold;
- fail: it lies wholly on the wrong side (the evidence says worse, or unfair);
- inconclusive: it straddles the threshold.
The verdict is **reject** when a check fails, **not_enough_evidence** when none fails but one is
inconclusive, and **promote** when all pass. Fairness gaps whose estimate is within the limit pass
unless the policy requires evidence of fairness (see `Fairness.require_evidence_of_fairness`).

`method: fixed_threshold` is the gate before intervals (point estimates, promote or reject); it stays
for comparison (bench/gate_error_rates.py) and for users who want it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from contracts.events import GateCheck, GateEvidence
from services.training.domain.bootstrap import (
    Interval,
    group_rate_gaps,
    interval,
    log_losses,
    resample_counts,
    weighted_auc,
    weighted_mean,
)
from services.training.domain.model import Evaluation, Scored
from services.training.domain.policy import GatePolicy

VerdictOutcome = Literal["promote", "reject", "not_enough_evidence"]
CheckOutcome = Literal["pass", "fail", "inconclusive"]
FAIRNESS_CHECKS = ("dpd_sex", "eod_sex", "dpd_age_band", "eod_age_band")


@dataclass(frozen=True)
class Verdict:
    outcome: VerdictOutcome
    evidence: GateEvidence

    @property
    def passed(self) -> bool:
        return self.outcome == "promote"

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.evidence.checks if not c.passed]

    def short_only_on_fairness(self) -> bool:
        """Every check that did not pass is a fairness check (a mitigation may help)."""
        short = [c.name for c in self.evidence.checks if not c.passed]
        return bool(short) and all(name in FAIRNESS_CHECKS for name in short)


def decide(
    candidate: Evaluation,
    policy: GatePolicy,
    champion: Evaluation | None = None,
    champion_version: str | None = None,
) -> Verdict:
    paired = champion is None or champion.scored is not None
    if policy.method == "paired_bootstrap" and candidate.scored is not None and paired:
        checks, method = _bootstrap_checks(candidate, policy, champion)
    else:
        checks, method = _fixed_checks(candidate, policy, champion), "fixed thresholds on point estimates"
    outcomes = {check.outcome for check in checks}
    verdict: VerdictOutcome = (
        "reject" if "fail" in outcomes else "not_enough_evidence" if "inconclusive" in outcomes else "promote"
    )
    evidence = GateEvidence(
        checks=checks,
        candidate_metrics=candidate.metrics,
        champion_metrics=champion.metrics if champion is not None else None,
        champion_version=champion_version,
        verdict=verdict,
        method=method,
        confidence=policy.confidence if policy.method == "paired_bootstrap" else None,
        holdout_rows=int(candidate.metrics.get("holdout_rows", 0)) or None,
    )
    return Verdict(verdict, evidence)


# --- paired bootstrap ----------------------------------------------------------------------------


def _bootstrap_checks(
    candidate: Evaluation, policy: GatePolicy, champion: Evaluation | None
) -> tuple[list[GateCheck], str]:
    rows = candidate.scored
    assert rows is not None
    weights = resample_counts(len(rows.y), policy.bootstrap_samples, policy.bootstrap_seed)
    level = policy.confidence
    cand_auc = weighted_auc(rows.y, rows.p_bad, weights)
    cand_ll = log_losses(rows.y, rows.p_bad)
    floor = policy.absolute
    auc = interval(candidate.metrics["auc"], cand_auc, level)
    loss = interval(float(cand_ll.mean()), weighted_mean(cand_ll, weights), level)
    if floor.require_evidence:
        checks = [_at_least("auc_min", auc, floor.auc_min, "ROC AUC"),
                  _at_most("log_loss_max", loss, floor.log_loss_max, "log loss")]  # fmt: skip
    else:
        checks = [_benefit_of_doubt("auc_min", auc, floor.auc_min, "ROC AUC", higher_is_better=True),
                  _benefit_of_doubt("log_loss_max", loss, floor.log_loss_max, "log loss")]  # fmt: skip
    if champion is not None:
        champ = champion.scored
        assert champ is not None
        auc_diff = cand_auc - weighted_auc(champ.y, champ.p_bad, weights)
        ll_diff = cand_ll - log_losses(champ.y, champ.p_bad)
        margin = policy.versus_champion
        point_auc = candidate.metrics["auc"] - champion.metrics["auc"]
        checks.append(_at_least("auc_not_worse", interval(point_auc, auc_diff, level), -margin.auc_epsilon,
                                "AUC candidate - champion"))  # fmt: skip
        checks.append(_at_most("log_loss_not_worse", interval(float(ll_diff.mean()),
                               weighted_mean(ll_diff, weights), level), margin.log_loss_delta,
                               "log loss candidate - champion"))  # fmt: skip
    checks += _fairness_intervals(candidate, rows, policy, weights)
    method = (
        f"paired bootstrap of the holdout ({policy.bootstrap_samples} resamples, seed "
        f"{policy.bootstrap_seed}), percentile intervals at {policy.confidence:.0%}"
    )
    return checks, method


def _fairness_intervals(
    candidate: Evaluation, rows: Scored, policy: GatePolicy, weights: np.ndarray
) -> list[GateCheck]:
    checks = []
    for name in FAIRNESS_CHECKS:
        kind, attribute = name.split("_", 1)
        limit = getattr(getattr(policy.fairness, attribute), f"max_{kind}")
        gap = candidate.fairness[name]
        if gap.value is None:  # not measurable on this holdout: passes, and says so
            checks.append(GateCheck(name=name, passed=True, threshold=limit, outcome="pass",
                                    detail=f"not measured: {gap.detail()}"))  # fmt: skip
            continue
        kept = list(gap.rates)
        groups = rows.groups[attribute]
        if kind == "dpd":
            draws = group_rate_gaps(rows.approved.astype(float), groups, kept, weights)
        else:  # equal opportunity: approval among the applicants who turned out good
            good = rows.y == 0
            draws = group_rate_gaps(rows.approved[good].astype(float), groups[good], kept, weights[:, good])
        spread = interval(abs(gap.value), draws, policy.confidence)
        what = f"|{kind.upper()}| by {attribute}"
        if policy.fairness.require_evidence_of_fairness:
            check = _at_most(name, spread, limit, what)
        else:
            check = _benefit_of_doubt(name, spread, limit, what)
        checks.append(check.model_copy(update={"detail": f"{check.detail} ({gap.detail()})"}))
    return checks


def _check(name: str, spread: Interval, threshold: float, outcome: CheckOutcome, detail: str) -> GateCheck:
    return GateCheck(
        name=name,
        passed=outcome == "pass",
        value=spread.value,
        threshold=threshold,
        low=spread.low,
        high=spread.high,
        outcome=outcome,
        detail=detail,
    )


def _at_least(name: str, spread: Interval, limit: float, what: str) -> GateCheck:
    outcome: CheckOutcome = (
        "pass" if spread.low >= limit else "fail" if spread.high < limit else "inconclusive"
    )
    words = {"pass": "surely >=", "fail": "surely <", "inconclusive": "maybe <"}[outcome]
    return _check(name, spread, limit, outcome, f"{what} {spread.rounded()} {words} {limit:.4f}")


def _at_most(name: str, spread: Interval, limit: float, what: str) -> GateCheck:
    outcome: CheckOutcome = (
        "pass" if spread.high <= limit else "fail" if spread.low > limit else "inconclusive"
    )
    words = {"pass": "surely <=", "fail": "surely >", "inconclusive": "maybe >"}[outcome]
    return _check(name, spread, limit, outcome, f"{what} {spread.rounded()} {words} {limit:.4f}")


def _benefit_of_doubt(
    name: str, spread: Interval, limit: float, what: str, higher_is_better: bool = False
) -> GateCheck:
    """A bar the model must not be shown to miss: the estimate decides pass, the interval decides
    between inconclusive (it may be on the right side) and fail (surely on the wrong side)."""
    sign = -1.0 if higher_is_better else 1.0  # compare as "at most": negate values of an "at least" bar
    value, low, high = (
        sign * spread.value,
        min(sign * spread.low, sign * spread.high),
        max(sign * spread.low, sign * spread.high),
    )
    ok, miss = (">=", "<") if higher_is_better else ("<=", ">")
    if value <= sign * limit:
        inside = high <= sign * limit
        note = "" if inside else " (its interval reaches past it)"
        return _check(
            name, spread, limit, "pass", f"{what} {spread.rounded()}: estimate {ok} {limit:.4f}{note}"
        )
    outcome: CheckOutcome = "fail" if low > sign * limit else "inconclusive"
    words = f"surely {miss}" if outcome == "fail" else f"estimate {miss} (not sure)"
    return _check(name, spread, limit, outcome, f"{what} {spread.rounded()} {words} {limit:.4f}")


# --- fixed thresholds (the gate before intervals) ------------------------------------------------


def _fixed(name: str, value: float, limit: float, ok: bool, what: str, sign: str) -> GateCheck:
    return GateCheck(
        name=name,
        passed=ok,
        value=value,
        threshold=limit,
        outcome="pass" if ok else "fail",
        detail=f"{what} {value:.4f} {sign if ok else {'<=': '>', '>=': '<'}[sign]} {limit:.4f}",
    )


def _fixed_checks(candidate: Evaluation, policy: GatePolicy, champion: Evaluation | None) -> list[GateCheck]:
    m = candidate.metrics
    auc_min, ll_max = policy.absolute.auc_min, policy.absolute.log_loss_max
    checks = [
        _fixed("auc_min", m["auc"], auc_min, m["auc"] >= auc_min, "ROC AUC", ">="),
        _fixed("log_loss_max", m["log_loss"], ll_max, m["log_loss"] <= ll_max, "log loss", "<="),
    ]
    if champion is not None:
        c, margin = champion.metrics, policy.versus_champion
        floor, ceiling = c["auc"] - margin.auc_epsilon, c["log_loss"] + margin.log_loss_delta
        checks.append(_fixed("auc_not_worse", m["auc"], floor, m["auc"] >= floor,
                             "ROC AUC vs champion - eps", ">="))  # fmt: skip
        checks.append(_fixed("log_loss_not_worse", m["log_loss"], ceiling, m["log_loss"] <= ceiling,
                             "log loss vs champion + delta", "<="))  # fmt: skip
    for name in FAIRNESS_CHECKS:
        kind, attribute = name.split("_", 1)
        limit = getattr(getattr(policy.fairness, attribute), f"max_{kind}")
        gap = candidate.fairness[name]
        if gap.value is None:
            checks.append(GateCheck(name=name, passed=True, threshold=limit, outcome="pass",
                                    detail=f"not measured: {gap.detail()}"))  # fmt: skip
            continue
        value = abs(gap.value)
        check = _fixed(name, value, limit, value <= limit, f"|{kind.upper()}| by {attribute}", "<=")
        checks.append(check.model_copy(update={"detail": f"{check.detail} ({gap.detail()})"}))
    return checks


def with_mitigation(
    verdict: Verdict, method: str, unmitigated: tuple[str, str, Evaluation, Verdict]
) -> Verdict:
    """The mitigated candidate's verdict, its evidence carrying both candidates side by side."""
    run_id, version, evaluation, before = unmitigated
    side_by_side: dict[str, str | float | None] = {
        "method": method,
        "unmitigated_run_id": run_id,
        "unmitigated_version": version,
        "unmitigated_verdict": before.outcome,
    }
    after = verdict.evidence.candidate_metrics
    for name in ("auc", "log_loss", "approval_rate", *FAIRNESS_CHECKS):
        side_by_side[f"unmitigated_{name}"] = evaluation.metrics.get(name)
        side_by_side[f"mitigated_{name}"] = after.get(name)
    evidence = verdict.evidence.model_copy(update={"mitigation": side_by_side})
    return Verdict(verdict.outcome, evidence)
