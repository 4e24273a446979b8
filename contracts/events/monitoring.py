"""Events about a model at work: predictions (one at a time or in batch), drift and explanations."""

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from contracts.common import ContractModel, KafkaCoordinates, Name, Record, Sha256Hex
from contracts.envelope import Event
from contracts.topics import BATCH_SCORED, DRIFT_DETECTED, EXPLANATION_PRODUCED, PREDICTIONS_MADE


class PredictionMadePayload(ContractModel):
    """Body of `PredictionMade`."""

    prediction_id: Name = Field(description="Unique id of the prediction; labels refer back to it.")
    entity_id: Name | None = Field(default=None, description="Entity scored, if the request named one.")
    model_name: Name = Field(description="Registered model name.")
    model_version: Name = Field(description="Model version that produced the score.")
    score: float = Field(description="Raw model output, e.g. a probability.")
    decision: str = Field(description="Decision derived from the score, e.g. 'approve'.")
    features: Record = Field(description="Feature values used, as read (PII-free by construction).")
    latency_ms: float = Field(ge=0, description="Time to serve the prediction, in milliseconds.")
    shadow: bool = Field(default=False, description="True when scored by a challenger, not returned.")
    canary: bool = Field(
        default=False,
        description="True when answered by the canary version (returned to the client, but not the"
        " champion's: monitors of the champion leave it out). Absent in older events.",
    )
    probability: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "Calibrated probability of the positive class (the model card's calibration applied to the"
            " score), for estimating performance before labels arrive; None for uncalibrated models."
        ),
    )


class PredictionMade(Event[PredictionMadePayload]):
    """The serving API produced a prediction."""

    topic: ClassVar[str] = PREDICTIONS_MADE
    key_fields: ClassVar[tuple[str, ...]] = ("entity_id", "prediction_id")
    event_type: Literal["PredictionMade"] = "PredictionMade"
    schema_version: Literal[1] = 1


class DriftDetectedPayload(ContractModel):
    """Body of `DriftDetected`."""

    kind: Literal["data", "prediction", "concept", "performance"] = Field(
        description="Data drift (a feature), prediction drift (the scores), concept drift (the errors), or"
        " performance: the model's accuracy estimated from its calibrated probabilities, before any label"
        " (CBPE), fell past the policy's limit."
    )
    feature: str | None = Field(default=None, description="Drifting feature, for data drift.")
    detector: str = Field(min_length=1, description="Detector that fired, e.g. 'ADWIN' or 'PageHinkley'.")
    statistic: float = Field(description="Value of the detector's test statistic.")
    threshold: float | None = Field(default=None, description="Threshold the statistic crossed, if any.")
    window_start: AwareDatetime = Field(description="Start of the observed window.")
    window_end: AwareDatetime = Field(description="End of the observed window.")
    window_size: int = Field(ge=0, description="Number of observations in the window.")
    model_name: Name | None = Field(default=None, description="Model concerned, if any (partition key).")
    model_version: str | None = Field(default=None, description="Model version concerned, if any.")
    first_source: KafkaCoordinates | None = Field(default=None, description="First message in the window.")
    last_source: KafkaCoordinates | None = Field(default=None, description="Last message in the window.")
    report_url: str | None = Field(default=None, description="Link to a monitoring report with evidence.")
    report_id: str | None = Field(
        default=None,
        max_length=128,
        description="Id of the report with evidence (made shortly after the event); None if none is made.",
    )
    arl0: float | None = Field(
        default=None,
        gt=0,
        description="Average number of updates between false alarms (under no change) that the "
        "threshold was calibrated for; None when the detector has no such calibration. "
        "Absent in older events.",
    )
    meaning: str | None = Field(
        default=None,
        max_length=500,
        description="What the alarm means, in words: the test, its parameters and its calibration. "
        "Absent in older events.",
    )


class DriftDetected(Event[DriftDetectedPayload]):
    """A drift detector fired; carries the evidence."""

    topic: ClassVar[str] = DRIFT_DETECTED
    key_fields: ClassVar[tuple[str, ...]] = ("model_name",)
    event_type: Literal["DriftDetected"] = "DriftDetected"
    schema_version: Literal[1] = 1


class ExplanationProducedPayload(ContractModel):
    """Body of `ExplanationProduced`."""

    scope: Literal["global", "local"] = Field(description="Whole model (global) or one prediction (local).")
    model_name: Name = Field(description="Registered model name (partition key).")
    model_version: Name = Field(description="Model version explained.")
    prediction_id: str | None = Field(default=None, description="Prediction explained, for local scope.")
    methods: list[str] = Field(description="Explanation methods used, e.g. 'shap', 'pdp'.")
    artifact_uri: str | None = Field(default=None, description="Where the full explanation is stored.")
    summary: str = Field(description="Plain-language summary for the people affected.")
    fidelity: dict[str, float | bool] = Field(description="How faithful the explanation is, by measure.")
    shap_algorithm: str | None = Field(
        default=None,
        description="How the SHAP values were computed, when SHAP is among the methods: 'exact_linear' "
        "(closed form for a logistic model) or 'kernel' (Kernel SHAP estimate). Absent in older events.",
    )


class ExplanationProduced(Event[ExplanationProducedPayload]):
    """An explanation of a model or of one prediction is available."""

    topic: ClassVar[str] = EXPLANATION_PRODUCED
    key_fields: ClassVar[tuple[str, ...]] = ("model_name",)
    event_type: Literal["ExplanationProduced"] = "ExplanationProduced"
    schema_version: Literal[1] = 1


class BatchScoredPayload(ContractModel):
    """Body of `BatchScored`."""

    job_id: Name = Field(description="The batch job (GET /batch-scores/{job_id} on the serving service).")
    model_name: Name = Field(description="Registered model name (partition key).")
    model_version: Name = Field(description="Model version that scored every row.")
    input_sha256: Sha256Hex = Field(
        description="SHA-256 of the input: the file as uploaded, or for a time range the Parquet snapshot"
        " of the offline store's rows that were scored (kept beside the output)."
    )
    rows: int = Field(ge=1, description="Rows scored (every row of the input).")
    source: Literal["file", "offline_store"] = Field(description="An uploaded file, or the offline store.")
    content_type: str | None = Field(default=None, description="Media type of an uploaded file.")
    start: AwareDatetime | None = Field(default=None, description="Offline store: first event time included.")
    end: AwareDatetime | None = Field(default=None, description="Offline store: end of the range (excluded).")
    output: str = Field(min_length=1, description="Where the scores are (the service's job file).")
    output_sha256: Sha256Hex = Field(description="SHA-256 of the output Parquet file.")
    duration_s: float = Field(ge=0, description="Seconds from the job's start to its output written.")


class BatchScored(Event[BatchScoredPayload]):
    """The serving service scored a file or a time range of the offline store with one model version
    (the scorer online requests use), and wrote the scores to a Parquet file."""

    topic: ClassVar[str] = BATCH_SCORED
    key_fields: ClassVar[tuple[str, ...]] = ("model_name",)
    event_type: Literal["BatchScored"] = "BatchScored"
    schema_version: Literal[1] = 1
