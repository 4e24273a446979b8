"""Events of a model's life: training requested, trained, promoted or rejected."""

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from contracts.common import ContractModel, Name, Sha256Hex
from contracts.envelope import Event
from contracts.topics import MODEL_CANARY, MODEL_PROMOTED, MODEL_REJECTED, MODEL_TRAINED, TRAINING_REQUESTED


class ScheduledFor(ContractModel):
    """Which schedule of the training policy asked for training, and for which due time."""

    trigger: Literal["cron", "labels", "age"] = Field(
        description="cron: a cron time; labels: N new labels since the last run; age: the champion's age."
    )
    due_at: AwareDatetime = Field(description="The due time this request is for (one request per due time).")


class TrainingRequestedPayload(ContractModel):
    """Body of `TrainingRequested`."""

    model_name: Name = Field(description="Model to (re)train (partition key).")
    reason: Literal["manual", "drift", "schedule"] = Field(description="What asked for training.")
    requested_by: str = Field(min_length=1, description="Who or what asked: a user, role or service.")
    trigger_event_id: str | None = Field(default=None, description="Event that triggered it, e.g. a drift.")
    window_start: AwareDatetime | None = Field(default=None, description="Start of the training window.")
    window_end: AwareDatetime | None = Field(default=None, description="End of the training window.")
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Hyper-parameter overrides."
    )
    labels_watermark: dict[str, int] | None = Field(
        default=None,
        description="End offset of each partition of the labels topic when training was asked for "
        "(partition number as a string -> offset): the run waits until training has consumed the "
        "labels up to it, so it learns from every label published before the request.",
    )
    schedule: ScheduledFor | None = Field(
        default=None,
        description="Set on a request the training policy's schedule made (reason 'schedule'): its "
        "trigger and due time. The event id is derived from them, so a due time is trained once.",
    )


class TrainingRequested(Event[TrainingRequestedPayload]):
    """Someone or something asked for a model to be trained."""

    topic: ClassVar[str] = TRAINING_REQUESTED
    key_fields: ClassVar[tuple[str, ...]] = ("model_name",)
    event_type: Literal["TrainingRequested"] = "TrainingRequested"
    schema_version: Literal[1] = 1


class GateCheck(ContractModel):
    """One check run by the validation gate."""

    name: str = Field(min_length=1, description="Check name, e.g. 'auc_not_worse', 'demographic_parity'.")
    passed: bool = Field(description="Whether the check passed.")
    value: float | None = Field(default=None, description="Measured value, if numeric.")
    threshold: float | None = Field(default=None, description="Threshold applied, if numeric.")
    detail: str = Field(default="", description="Human-readable detail.")
    low: float | None = Field(default=None, description="Lower bound of the value's confidence interval.")
    high: float | None = Field(default=None, description="Upper bound of the value's confidence interval.")
    outcome: Literal["pass", "fail", "inconclusive"] | None = Field(
        default=None,
        description="pass: the interval is on the right side of the threshold; fail: on the wrong side; "
        "inconclusive: it straddles it (see GateEvidence.verdict).",
    )


class GateEvidence(ContractModel):
    """What the validation gate measured, for the candidate and the champion."""

    checks: list[GateCheck] = Field(description="Every check the validation gate ran.")
    candidate_metrics: dict[str, float] = Field(description="Metrics of the candidate.")
    champion_metrics: dict[str, float] | None = Field(
        default=None, description="Metrics of the champion on the same data, if there is one."
    )
    champion_version: str | None = Field(default=None, description="Champion version compared against.")
    verdict: Literal["promote", "reject", "not_enough_evidence"] | None = Field(
        default=None,
        description="promote: every check passes at the policy's confidence; reject: one fails (the "
        "evidence says worse or unfair); not_enough_evidence: none fails but one is inconclusive.",
    )
    method: str | None = Field(
        default=None, description="How the intervals were computed, e.g. 'paired bootstrap, 1000 resamples'."
    )
    confidence: float | None = Field(
        default=None, gt=0, lt=1, description="Confidence level of the intervals (two-sided)."
    )
    holdout_rows: int | None = Field(default=None, ge=0, description="Rows the gate decided on.")
    mitigation: dict[str, str | float | None] | None = Field(
        default=None,
        description="When the unmitigated candidate failed only on fairness: the mitigation tried and "
        "both candidates' accuracy and fairness side by side.",
    )


class ModelTrainedPayload(ContractModel):
    """Body of `ModelTrained`."""

    model_name: Name = Field(description="Registered model name (partition key).")
    model_version: Name = Field(description="Version registered for the candidate.")
    run_id: Name = Field(description="Tracking (MLflow) run id.")
    metrics: dict[str, float] = Field(description="Evaluation metrics of the candidate.")
    window_start: AwareDatetime = Field(description="Start of the training data window.")
    window_end: AwareDatetime = Field(description="End of the training data window.")
    dataset_version: str = Field(min_length=1, description="Version of the training set.")
    dataset_sha256: Sha256Hex = Field(description="SHA-256 of the training set, for lineage.")
    feature_views: list[str] = Field(description="Feature views the training set was built from.")
    code_version: str = Field(min_length=1, description="Version of the training code, e.g. a git commit.")
    evidence: GateEvidence | None = Field(
        default=None, description="The validation gate's verdict, intervals and method for this candidate."
    )


class ModelTrained(Event[ModelTrainedPayload]):
    """A training run finished and registered a candidate."""

    topic: ClassVar[str] = MODEL_TRAINED
    key_fields: ClassVar[tuple[str, ...]] = ("model_name",)
    event_type: Literal["ModelTrained"] = "ModelTrained"
    schema_version: Literal[1] = 1


class ModelPromotedPayload(ContractModel):
    """Body of `ModelPromoted`."""

    model_name: Name = Field(description="Registered model name (partition key).")
    model_version: Name = Field(description="Version now serving as champion.")
    run_id: Name = Field(description="Tracking run that produced it.")
    previous_version: str | None = Field(default=None, description="Champion it replaced, if any.")
    evidence: GateEvidence = Field(
        description="Why the gate let it through (for a rollback: the gate's evidence when that version "
        "was first promoted)."
    )
    kind: Literal["promotion", "rollback"] = Field(
        default="promotion",
        description="promotion: a candidate passed the gate; rollback: ops moved the champion back to an "
        "earlier champion (see `reason`). Absent in payloads written before rollbacks existed.",
    )
    reason: str | None = Field(
        default=None, max_length=500, description="Why ops moved the champion (set for a rollback)."
    )
    requested_by: str | None = Field(
        default=None, max_length=200, description="Who moved the champion (set for a rollback)."
    )


class ModelPromoted(Event[ModelPromotedPayload]):
    """A model became the champion: a candidate passed the validation gate, or ops rolled the champion
    back to an earlier one (`kind`). Serving swaps to it the same way in both cases."""

    topic: ClassVar[str] = MODEL_PROMOTED
    key_fields: ClassVar[tuple[str, ...]] = ("model_name",)
    event_type: Literal["ModelPromoted"] = "ModelPromoted"
    schema_version: Literal[1] = 1


class ModelRejectedPayload(ContractModel):
    """Body of `ModelRejected`."""

    model_name: Name = Field(description="Registered model name (partition key).")
    model_version: str | None = Field(default=None, description="Candidate version, if one was registered.")
    run_id: str | None = Field(default=None, description="Tracking run, if one was started.")
    reasons: list[str] = Field(min_length=1, description="Why the candidate was not promoted.")
    evidence: GateEvidence | None = Field(default=None, description="Gate results, if the gate ran.")


class ModelRejected(Event[ModelRejectedPayload]):
    """A candidate failed the validation gate, or training failed before the gate."""

    topic: ClassVar[str] = MODEL_REJECTED
    key_fields: ClassVar[tuple[str, ...]] = ("model_name",)
    event_type: Literal["ModelRejected"] = "ModelRejected"
    schema_version: Literal[1] = 1


class CanaryChangedPayload(ContractModel):
    """Body of `CanaryChanged`."""

    model_name: Name = Field(description="Registered model name (partition key).")
    action: Literal["started", "ended"] = Field(
        description="started: the `canary` alias names `model_version` and serving sends it `share` of "
        "live traffic (a new share or version replaces the running canary); ended: the alias is gone."
    )
    model_version: str = Field(min_length=1, description="The canary's version (for ended: the one ended).")
    share: float | None = Field(
        default=None, gt=0, le=0.5, description="Share of live traffic the canary answers (started only)."
    )
    champion_version: str | None = Field(default=None, description="The champion it is compared with.")
    reason: str = Field(min_length=1, max_length=500, description="Why ops started or ended it.")
    requested_by: str = Field(min_length=1, max_length=200, description="Who did.")


class CanaryChanged(Event[CanaryChangedPayload]):
    """Ops started, changed or ended a canary: a version answering a share of live traffic beside the
    champion, chosen by a hash of the request's key. Nothing is promoted by it."""

    topic: ClassVar[str] = MODEL_CANARY
    key_fields: ClassVar[tuple[str, ...]] = ("model_name",)
    event_type: Literal["CanaryChanged"] = "CanaryChanged"
    schema_version: Literal[1] = 1
