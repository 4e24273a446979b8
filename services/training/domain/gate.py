"""The validation gate, pure: candidate (and champion, scored on the same holdout) -> checks -> verdict.

Every candidate must pass the absolute floor (`policy.absolute`) and the fairness limits; when there is
a champion it must also not be worse than the champion by more than the policy's margins. The first
model is therefore promoted when it passes the absolute floor and fairness.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.events import GateCheck, GateEvidence
from services.training.domain.model import Evaluation
from services.training.domain.policy import GatePolicy


@dataclass(frozen=True)
class Verdict:
    passed: bool
    evidence: GateEvidence

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.evidence.checks if not c.passed]


def at_most(name: str, value: float, limit: float, what: str) -> GateCheck:
    ok = value <= limit
    return GateCheck(
        name=name,
        passed=ok,
        value=value,
        threshold=limit,
        detail=f"{what} {value:.4f} {'<=' if ok else '>'} {limit:.4f}",
    )


def at_least(name: str, value: float, limit: float, what: str) -> GateCheck:
    ok = value >= limit
    return GateCheck(
        name=name,
        passed=ok,
        value=value,
        threshold=limit,
        detail=f"{what} {value:.4f} {'>=' if ok else '<'} {limit:.4f}",
    )


def decide(
    candidate: Evaluation,
    policy: GatePolicy,
    champion: Evaluation | None = None,
    champion_version: str | None = None,
) -> Verdict:
    m = candidate.metrics
    checks = [
        at_least("auc_min", m["auc"], policy.absolute.auc_min, "ROC AUC"),
        at_most("log_loss_max", m["log_loss"], policy.absolute.log_loss_max, "log loss"),
    ]
    if champion is not None:
        c = champion.metrics
        margin = policy.versus_champion
        checks.append(
            at_least("auc_not_worse", m["auc"], c["auc"] - margin.auc_epsilon, "ROC AUC vs champion - eps")
        )
        checks.append(
            at_most(
                "log_loss_not_worse",
                m["log_loss"],
                c["log_loss"] + margin.log_loss_delta,
                "log loss vs champion + delta",
            )
        )
    checks += fairness_checks(candidate, policy)
    evidence = GateEvidence(
        checks=checks,
        candidate_metrics=m,
        champion_metrics=champion.metrics if champion is not None else None,
        champion_version=champion_version,
    )
    return Verdict(all(check.passed for check in checks), evidence)


def fairness_checks(candidate: Evaluation, policy: GatePolicy) -> list[GateCheck]:
    limits = {"sex": policy.fairness.sex, "age_band": policy.fairness.age_band}
    checks = []
    for attribute, limit in limits.items():
        for kind, threshold in (("dpd", limit.max_dpd), ("eod", limit.max_eod)):
            gap = candidate.fairness[f"{kind}_{attribute}"]
            name = f"{kind}_{attribute}"
            if gap.value is None:  # not measurable on this holdout: passes, and says so
                checks.append(
                    GateCheck(
                        name=name, passed=True, threshold=threshold, detail=f"not measured: {gap.detail()}"
                    )
                )
                continue
            check = at_most(name, abs(gap.value), threshold, f"|{kind.upper()}| by {attribute}")
            checks.append(check.model_copy(update={"detail": f"{check.detail} ({gap.detail()})"}))
    return checks
