"""Typed answers of the routes the client calls.

Serving's shapes are the ones its OpenAPI document publishes (docs/openapi/serving.json:
`PredictionOut`, `LabelAccepted`, `ModelStatus`; a unit test holds these against it). The other
services answer plain JSON objects; their models here name the fields their routes write and keep any
other (`extra="allow"`), so a newer service never breaks an older client. The services are not
imported: the client installs and runs without them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Answer(BaseModel):
    """An answer's fields by name; fields this client does not know are kept, not refused."""

    model_config = ConfigDict(extra="allow", frozen=True)


# -- serving (client, producer) ------------------------------------------------------------------
class Prediction(Answer):
    prediction_id: str
    score: float = Field(description="P(bad), from the champion model.")
    probability: float | None = Field(default=None, description="Calibrated P(bad); None if uncalibrated.")
    decision: Literal["approve", "decline"]
    model_name: str
    model_version: str
    out_of_profile: list[str] = Field(default_factory=list)


class LabelAccepted(Answer):
    event_id: str
    prediction_id: str
    entity_id: str


class ModelInfo(Answer):
    alias: str
    model_name: str
    model_version: str
    loaded_at: datetime
    load_seconds: float
    threshold: float
    features: list[str]
    scorer: str
    profiled: list[str] = Field(default_factory=list)


class ModelStatus(Answer):
    champion: ModelInfo | None
    shadow: ModelInfo | None


# -- ingest (producer) ---------------------------------------------------------------------------
class RecordReceipt(Answer):
    landed: bool
    source: dict[str, Any] | None = Field(None, description="topic, partition, offset, timestamp_ms.")
    event_id: str | None = Field(None, description="Of the record's outcome (clean or rejected).")
    expected_outcome: Literal["clean", "rejected"] | None = None
    code: str | None = Field(None, description="`duplicate_record` for an identical resend.")
    error: str | None = None


class RecordsAccepted(Answer):
    accepted: int
    records: list[RecordReceipt]


# -- explain (client, ops, auditor) --------------------------------------------------------------
class Explanation(Answer):
    model_name: str
    model_version: str
    prediction_id: str | None
    p_bad: float
    decision: str
    threshold: float
    summary: str
    methods: list[str]
    fidelity: dict[str, Any] = Field(default_factory=dict)
    shap: dict[str, Any] | None = None
    lime: dict[str, Any] | None = None
    counterfactual: dict[str, Any] | None = None


# -- training (ops) ------------------------------------------------------------------------------
class TrainingRequested(Answer):
    event_id: str
    correlation_id: str | None = None
    status: str
    window: dict[str, str | None]
    window_note: str
    warning: str | None = None


class RunOutcome(Answer):
    request_id: str
    status: Literal["promoted", "rejected"]
    reasons: list[str] = Field(default_factory=list)
    run_id: str | None = None
    model_version: str | None = None
    previous_version: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)
    evidence: dict[str, Any] | None = Field(None, description="The gate's checks, metrics and verdict.")


class RetrainingStatus(Answer):
    paused: bool
    changed_by: str | None = Field(None, description="Who last switched it (role:key name).")
    changed_at: str | None = None
    note: str | None = None
    policy: dict[str, Any]
    waiting: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = Field(default_factory=list)
    schedule: dict[str, Any] | None = Field(
        None,
        description="The policy's schedule: per trigger (cron, labels, age) its next due time and last fire.",
    )


# -- drift (ops) ---------------------------------------------------------------------------------
class OnlineQuality(Answer):
    model: str
    version: str
    labelled: float
    accuracy: float | None = None
    auc: float | None = None
    brier: float | None = None
    calibration_error: float | None = None


class PerformanceEstimate(Answer):
    """A version's performance estimated before labels (CBPE), and the labels' verdict on it.

    `estimate` / `reference`: the last full window's and the version's first window's rows,
    accuracy, accuracy_se, auc, cost, approval_rate. `realised`: on the last window with enough
    labels, labelled, realised_accuracy, estimated_accuracy, gap, z, realised_auc, estimated_auc,
    realised_cost, estimated_cost."""

    model: str
    version: str
    calibrated: bool
    window_size: int
    estimate: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    accuracy_drop: float | None = None
    accuracy_drop_se: float | None = None
    drop_detected: bool = False
    realised: dict[str, Any] | None = None
    estimator_suspect: bool = False


class Detectors(Answer):
    monitors: dict[str, dict[str, Any]]
    model_versions: dict[str, Any] = Field(default_factory=dict)
    join: dict[str, Any] = Field(default_factory=dict)
    online_quality: list[OnlineQuality] = Field(default_factory=list)
    performance_estimates: list[PerformanceEstimate] = Field(default_factory=list)
    skipped: dict[str, Any] = Field(default_factory=dict)
    published: Any = None


class ReportListing(Answer):
    reports: list[dict[str, Any]]
    pending: int
    champion: dict[str, Any] | None = None


class ReportLinks(Answer):
    """Signed browser links: the index, and one report's page when asked for; both end at expires_at."""

    index: str
    expires_at: str
    report: str | None = None


# -- audit (auditor) -----------------------------------------------------------------------------
class Verification(Answer):
    intact: bool
    checked: int
    head_hash: str
    broken_at: int | None = None
    reason: str | None = None
    anchors_checked: int = 0
    problems: list[str] = Field(default_factory=list)


class AuditSummary(Answer):
    chain_length: int
    head_hash: str
    last_event_id: str | None = None
    events_by_type: dict[str, int] = Field(default_factory=dict)
    raw_by_topic: dict[str, int] = Field(default_factory=dict)
    undecodable_by_topic: dict[str, int] = Field(default_factory=dict)
    erasures: int = 0


class EventPage(Answer):
    items: list[dict[str, Any]] = Field(description="Rows: seq, event_type, ..., and the event itself.")
    next_after: int | None = Field(None, description="Pass as `after` for the next page; None: last page.")


class Lineage(Answer):
    prediction_id: str
    prediction: dict[str, Any]
    model: dict[str, Any]
    promotion: dict[str, Any] | None = None
    gate_evidence: dict[str, Any] | None = None
    training_run: dict[str, Any] | None = None
    training_window: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    training_request: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    missing: list[str] = Field(default_factory=list)
