"""The gate and retraining policy: a YAML file validated into a frozen model (see policy.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.training.domain.schedule import Schedule
from services.training.errors import PolicyError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelParams(_Strict):
    C: float = Field(0.5, gt=0, description="Inverse regularisation strength.")
    max_iter: int = Field(1000, ge=10, le=100_000)
    seed: int = Field(7, ge=0)


class Absolute(_Strict):
    auc_min: float = Field(0.65, ge=0, le=1)
    log_loss_max: float = Field(0.60, gt=0)
    require_evidence: bool = Field(
        False,
        description="True: the floor passes only when the whole interval clears it. False: an estimate "
        "that clears it passes (the interval is reported); one that misses it is inconclusive until the "
        "whole interval misses it (then it fails). The comparison with the champion always needs evidence.",
    )


class VersusChampion(_Strict):
    auc_epsilon: float = Field(0.02, ge=0, le=1)
    log_loss_delta: float = Field(0.02, ge=0)


class GroupLimits(_Strict):
    max_dpd: float = Field(ge=0, le=1, description="Largest |demographic parity difference|.")
    max_eod: float = Field(ge=0, le=1, description="Largest |equal-opportunity difference|.")


class Fairness(_Strict):
    min_group_size: int = Field(30, ge=1)
    sex: GroupLimits = GroupLimits(max_dpd=0.15, max_eod=0.15)
    age_band: GroupLimits = GroupLimits(max_dpd=0.40, max_eod=0.40)
    require_evidence_of_fairness: bool = Field(
        False,
        description="True: a gap passes only when its whole interval is within the limit. False: a gap "
        "whose estimate is within the limit passes (its interval is reported); one whose estimate is over "
        "it is inconclusive until its interval is wholly over it (then it fails).",
    )
    mitigation: Literal["exponentiated_gradient", "none"] = Field(
        "exponentiated_gradient",
        description="Tried when a candidate falls short on fairness only: fairlearn's reduction under a "
        "demographic-parity (dpd) or true-positive-rate-parity (eod) constraint on the attribute at fault.",
    )
    mitigation_bound: float = Field(0.03, gt=0, le=1, description="The constraint's allowed difference.")


class GatePolicy(_Strict):
    method: Literal["paired_bootstrap", "fixed_threshold"] = Field(
        "paired_bootstrap",
        description="paired_bootstrap: intervals at `confidence`, three verdicts; fixed_threshold: point "
        "estimates against the thresholds, promote or reject (the gate before intervals).",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Two-sided confidence of the intervals.")
    bootstrap_samples: int = Field(1000, ge=100, le=20_000)
    bootstrap_seed: int = Field(11, ge=0)
    evidence_retries: int = Field(
        2,
        ge=0,
        description="A drift retrain judged not_enough_evidence is run again on the same window once "
        "`evidence_labels_factor` times its labels have come, at most this many times (within label_wait_s).",
    )
    evidence_labels_factor: float = Field(1.5, gt=1)
    min_labels: int = Field(200, ge=10)
    holdout_share: float = Field(0.2, gt=0, lt=1)
    decision_threshold: float = Field(0.5, gt=0, lt=1)
    exclude_features: tuple[str, ...] = ("personal_status_and_sex", "foreign_worker")
    retrain_on_drift: bool = False  # master switch of the retraining rules below
    # "performance" (an estimated drop, before labels) never retrains at once: it waits for the labels
    # since its change point like any since-change retrain (min_new_labels), then retrains on them.
    retrain_on_kinds: tuple[Literal["data", "prediction", "concept", "performance"], ...] = (
        "concept",
        "prediction",
        "performance",
    )
    min_new_labels: int = Field(50, ge=0, description="Labelled entities received since the last run.")
    retrain_cooldown_s: int = Field(3600, ge=0, description="Least time between two drift retrains.")
    max_retrains_per_hour: int = Field(2, ge=0, description="Drift retrains decided per rolling hour.")
    drift_window_s: int | None = Field(
        None,
        ge=60,
        description="Without a change point: train on examples labelled this long before the newest label.",
    )
    train_since_change: bool = Field(
        False,
        description="A drift retrain trains on the applications since the drift's change point (the "
        "event's window_start) and waits until min_new_labels labels have arrived since it.",
    )
    follow_up_labels: int | None = Field(
        None,
        ge=1,
        description="After a since-change retrain, retrain once more on the same window when this many "
        "labels have been observed since the change (the first learnt from few); null: no follow-up.",
    )
    label_wait_s: int = Field(
        3600, ge=1, description="How long a drift retrain waits for labels since the change, at most."
    )
    schedule: Schedule = Field(
        Schedule(),
        description="Scheduled retraining: cron, every N labels, champion age (all off by default).",
    )
    model: ModelParams = ModelParams()
    absolute: Absolute = Absolute()
    versus_champion: VersusChampion = VersusChampion()
    fairness: Fairness = Fairness()
    age_band_edges: tuple[int, int] = (25, 41)

    @model_validator(mode="after")
    def _edges_increase(self) -> GatePolicy:
        if not self.age_band_edges[0] < self.age_band_edges[1]:
            raise ValueError("age_band_edges must increase")
        return self


def load_policy(path: Path, schedule: Mapping[str, str] | None = None) -> GatePolicy:
    """The policy file, with `schedule` fields given in the environment over the file's (the value
    "off" switches a trigger off); both are validated alike."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
        if schedule and isinstance(data, dict) and isinstance(data.get("schedule") or {}, dict):
            given = {k: None if v.strip().lower() == "off" else v for k, v in schedule.items()}
            data["schedule"] = (data.get("schedule") or {}) | given
        return GatePolicy.model_validate(data)
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        also = f" (with TRAINING_SCHEDULE_* overrides {sorted(schedule)})" if schedule else ""
        raise PolicyError(f"policy file {path}{also} is invalid: {exc}") from None
