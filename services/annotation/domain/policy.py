"""The sampling policy: which predictions people should review, and why.

Read from the YAML file ops edit (`services/annotation/policy.yaml` by default); every field has a
default, so an empty file is a valid policy. A prediction is chosen for one or more reasons:

- `uncertain`: |p - threshold| <= `uncertainty.margin`, p the calibrated probability if the
  prediction has one, else its score; the threshold is the model version's `decision_threshold`;
- `drift`: a `drift.share` of the predictions made within `drift.window_s` after a `DriftDetected`
  for the prediction's model;
- `audit`: a small random `audit.share` of everything;
- `fairness`: a `fairness.share` of the predictions of a group (sex, or age band) whose share among
  the tasks sent so far is below `fairness.min_share`.

Shadow predictions are never chosen (nobody received them); canary ones are. Random choices are
deterministic: a uniform number from sha256(prediction_id | reason), so a redelivery or a replay
decides the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

UNCERTAIN = "uncertain"
DRIFT = "drift"
AUDIT = "audit"
FAIRNESS = "fairness"
REASON_KINDS = (UNCERTAIN, DRIFT, AUDIT, FAIRNESS)


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Uncertainty(_Part):
    margin: float = Field(0.05, ge=0, le=1, description="Largest |p - threshold| called uncertain.")


class DriftSampling(_Part):
    window_s: float = Field(3600.0, ge=0, description="How long after a DriftDetected its model is sampled.")
    share: float = Field(0.3, ge=0, le=1, description="Share of that model's predictions sampled meanwhile.")


class AuditSampling(_Part):
    share: float = Field(0.01, ge=0, le=1, description="Share of every prediction sampled at random.")


class FairnessSampling(_Part):
    min_share: float = Field(
        0.2, ge=0, le=1, description="A group below this share of the tasks sent so far is under-represented."
    )
    share: float = Field(0.25, ge=0, le=1, description="Share of an under-represented group's cases sampled.")
    age_band_edges: tuple[int, int] = Field((25, 41), description="Age bands as the training gate cuts them.")
    sex_groups: tuple[str, ...] = Field(("male", "female"), description="Sex groups watched.")


class SamplingPolicy(_Part):
    default_threshold: float = Field(
        0.5, ge=0, le=1, description="Threshold used when the model version's card cannot be read."
    )
    annotations_per_task: int = Field(1, ge=1, le=20, description="Annotations a task needs (its project's).")
    max_open_tasks: int = Field(
        1000, ge=0, description="Budget: no new task while this many are queued, open or disputed."
    )
    task_ttl_s: float = Field(
        14 * 24 * 3600,
        gt=0,
        description="A task open longer than this expires: it leaves the budget and is no longer polled"
        " (a late answer that still comes by webhook is used).",
    )
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)
    drift: DriftSampling = Field(default_factory=DriftSampling)
    audit: AuditSampling = Field(default_factory=AuditSampling)
    fairness: FairnessSampling = Field(default_factory=FairnessSampling)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> SamplingPolicy:
        return cls.model_validate(dict(data or {}))


def uniform(prediction_id: str, reason: str) -> float:
    """A number in [0, 1) that depends only on the prediction and the reason."""
    digest = hashlib.sha256(f"{prediction_id}|{reason}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sex_of(personal_status_and_sex: object) -> str:
    """ "male : single" -> "male", "female : ..." -> "female", anything else -> "unknown" (as training)."""
    prefix = str(personal_status_and_sex).split(":")[0].strip().lower()
    return prefix if prefix in ("male", "female") else "unknown"


def age_band(age: object, edges: tuple[int, int] = (25, 41)) -> str:
    """`under_{a}` (< a), `{a}_{b-1}` (a..b-1), `over_{b-1}` (>= b), as training's gate; or "unknown"."""
    low, high = edges
    if isinstance(age, bool) or not isinstance(age, int | float):
        return "unknown"
    if age < low:
        return f"under_{low}"
    return f"{low}_{high - 1}" if age < high else f"over_{high - 1}"


def groups_of(features: Mapping[str, Any], edges: tuple[int, int] = (25, 41)) -> dict[str, str]:
    """The fairness groups of a case, from its features: {"sex": ..., "age_band": ...}."""
    age = features.get("age_in_years", features.get("age"))
    return {
        "sex": sex_of(features.get("personal_status_and_sex", "")),
        "age_band": age_band(age, edges),
    }


@dataclass(frozen=True)
class Case:
    """What the policy needs to know about one prediction."""

    prediction_id: str
    p: float
    threshold: float
    shadow: bool
    in_drift_window: bool
    groups: Mapping[str, str]


@dataclass(frozen=True)
class GroupShares:
    """How many tasks were sent so far, and how many per group value (e.g. ("sex", "female"))."""

    total: int
    by_group: Mapping[tuple[str, str], int]

    def share(self, dimension: str, value: str) -> float:
        if self.total == 0:
            return 0.0
        return self.by_group.get((dimension, value), 0) / self.total


def watched(policy: SamplingPolicy, dimension: str, value: str) -> bool:
    if value == "unknown":
        return False
    if dimension == "sex":
        return value in policy.fairness.sex_groups
    return True


def reasons_for(policy: SamplingPolicy, case: Case, shares: GroupShares) -> list[str]:
    """Every reason the policy has to send this case to review (empty: not chosen)."""
    if case.shadow:
        return []
    reasons: list[str] = []
    if abs(case.p - case.threshold) <= policy.uncertainty.margin:
        reasons.append(UNCERTAIN)
    if case.in_drift_window and uniform(case.prediction_id, DRIFT) < policy.drift.share:
        reasons.append(DRIFT)
    if uniform(case.prediction_id, AUDIT) < policy.audit.share:
        reasons.append(AUDIT)
    for dimension, value in sorted(case.groups.items()):
        if not watched(policy, dimension, value):
            continue
        if shares.share(dimension, value) < policy.fairness.min_share:
            reason = f"{FAIRNESS}:{dimension}={value}"
            if uniform(case.prediction_id, reason) < policy.fairness.share:
                reasons.append(reason)
    return reasons


def reason_kind(reason: str) -> str:
    """The metric label of a reason: `fairness:sex=female` -> `fairness`."""
    return reason.split(":", 1)[0]
