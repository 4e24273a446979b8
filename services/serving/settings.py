"""Settings of the serving service (env prefix `SERVING_`; platform-wide values unprefixed)."""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contracts.topics import BATCH_SCORED, LABELS_OBSERVED, MODEL_CANARY, MODEL_PROMOTED, PREDICTIONS_MADE
from servicekit.settings import ServiceSettings


class ServingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SERVING_", extra="ignore", populate_by_name=True)
    service_name: ClassVar[str] = "serving"

    http_port: int = Field(8104, ge=1, le=65535, description="Port of the HTTP API.")
    champion_alias: str = Field("champion", min_length=1, description="MLflow alias of the model served.")
    shadow_alias: str | None = Field(
        None,
        description="MLflow alias of a challenger scored in shadow (e.g. 'challenger'): its predictions "
        "are published with shadow=true, never returned. Unset: no shadow scoring.",
    )
    canary_alias: str | None = Field(
        "canary",
        description="MLflow alias of a canary (set by ops through the training service): it answers the "
        "share of live traffic in the registered model's tag canary_share, chosen by a hash of the "
        "entity id (else of the features sent). Unset: no canary.",
    )
    max_batch_size: int = Field(100, ge=1, le=10_000, description="Most instances in one POST /predict.")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest POST /predict or /labels body in bytes (413 above)."
    )
    champion_poll_s: float = Field(
        30.0,
        ge=0,
        description="Seconds between checks of the champion alias in the registry, a safety net for a "
        "missed model.promoted (and how a service started before any training finds its first model). "
        "0 disables polling.",
    )
    instance_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex[:12],
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Names this replica's own consumer group for model.promoted (serving-<instance_id>): "
        "every replica must reload, so replicas never share that group. Default: random per process.",
    )
    trust_registry_models: bool = Field(
        True,
        description="Allow deserializing models from the registry (sets MLflow's "
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION): loading a model runs code from its artifact, so only "
        "point the service at a registry whose writers you trust.",
    )
    fast_linear_scoring: bool = Field(
        True,
        description="Score linear pipelines (scaler/one-hot + logistic regression) with a compiled "
        "pure-Python scorer, checked against the pipeline at load time; other models use scikit-learn.",
    )
    outbox_size: int = Field(
        10_000, ge=1, description="Bounded queue of prediction events awaiting publication; full -> dropped."
    )
    outbox_batch: int = Field(
        100, ge=1, le=10_000, description="Most events built and published per batch (bounds loop stalls)."
    )
    outbox_retry_max_s: float = Field(5.0, gt=0, description="Longest pause between publish attempts.")
    outbox_window_ms: float = Field(
        50.0,
        ge=0,
        le=1_000,
        description="How long the outbox gathers prediction events after the first before publishing them "
        "together (0: publish as they come). One produce request per window, not per prediction.",
    )
    recent_predictions: int = Field(
        100_000,
        ge=1,
        description="Predictions remembered (id, entity, label) so /labels only accepts a label for a "
        "prediction this process made: older ones, and any made before a restart, answer 404.",
    )
    out_of_profile: Literal["refuse", "flag"] = Field(
        "refuse",
        description="Feature values sent to /predict outside the champion's training profile (a number "
        "outside the range seen in training, a category never seen): 'refuse' answers 422 naming the "
        "feature; 'flag' scores them and names the features in the answer's out_of_profile. Values read "
        "from the online store are always scored and flagged, never refused.",
    )
    batch_max_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024,
        description="Largest file POST /batch-scores accepts, in bytes (413 above); it is kept on disk, "
        "not in memory, while the job runs.",
    )
    batch_chunk_rows: int = Field(
        50_000, ge=1, description="Rows scored per step of a batch job (each step runs in a worker thread)."
    )
    batch_max_running: int = Field(
        2, ge=1, le=64, description="Batch jobs running at once; another POST /batch-scores answers 429."
    )
    batch_keep_jobs: int = Field(
        20,
        ge=1,
        description="Finished batch jobs (done or failed) kept on disk; the oldest beyond it are deleted, "
        "output included, when a job ends and at start-up, and their GET answers 404. A count, not an "
        "age: it bounds the disk a busy service uses, and a quiet one keeps results not fetched yet.",
    )
    label_dataset: str = Field(
        "loan_applications", min_length=1, description="Dataset named in LabelObserved events."
    )
    predictions_topic: str = Field(PREDICTIONS_MADE, description="Topic PredictionMade events go to.")
    labels_topic: str = Field(LABELS_OBSERVED, description="Topic LabelObserved events go to.")
    batch_scored_topic: str = Field(BATCH_SCORED, description="Topic BatchScored events go to.")
    promotions_topic: str = Field(MODEL_PROMOTED, description="Topic ModelPromoted events come from.")
    canary_topic: str = Field(MODEL_CANARY, description="Topic CanaryChanged events come from.")

    @property
    def consumer_group(self) -> str:
        return f"{self.service_name}-{self.instance_id}"
