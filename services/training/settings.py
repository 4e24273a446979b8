"""Settings of the training service (env prefix `TRAINING_`; platform-wide values come from the base)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contracts.topics import (
    DRIFT_DETECTED,
    LABELS_OBSERVED,
    MODEL_CANARY,
    MODEL_PROMOTED,
    MODEL_REJECTED,
    MODEL_TRAINED,
    TRAINING_REQUESTED,
)
from servicekit.settings import ServiceSettings

DEFAULT_POLICY = Path(__file__).resolve().parent / "policy.yaml"


class TrainingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINING_", extra="ignore", populate_by_name=True)
    default_fetch_wait_ms: ClassVar[int] = 250  # off a record's way to the online store
    service_name: ClassVar[str] = "training"

    http_port: int = Field(8103, ge=1, le=65535, description="Port of the HTTP API.")
    policy_file: Path = Field(DEFAULT_POLICY, description="Gate and retraining policy (YAML), read per run.")
    dataset: str = Field(
        "loan_applications", min_length=1, description="Labels of other datasets are ignored."
    )
    experiment_name: str | None = Field(None, description="MLflow experiment. Default: the model name.")
    state_path: Path | None = Field(
        None, description="SQLite file of labels and run outcomes. Default: <state_dir>/training/training.db."
    )
    group_id: str = Field("training", min_length=1, description="Kafka consumer group of the service.")
    labels_topic: str = Field(LABELS_OBSERVED, description="Topic LabelObserved events are read from.")
    requests_topic: str = Field(
        TRAINING_REQUESTED, description="Topic of TrainingRequested (read and written)."
    )
    drift_topic: str = Field(DRIFT_DETECTED, description="Topic DriftDetected events are read from.")
    trained_topic: str = Field(MODEL_TRAINED, description="Topic ModelTrained events go to.")
    promoted_topic: str = Field(MODEL_PROMOTED, description="Topic ModelPromoted events go to.")
    rejected_topic: str = Field(MODEL_REJECTED, description="Topic ModelRejected events go to.")
    canary_topic: str = Field(MODEL_CANARY, description="Topic CanaryChanged events go to.")
    label_watermark_wait_s: float = Field(
        120.0,
        ge=0,
        le=3600,
        description="How long a run waits for the labels published before its request to be stored "
        "(its label watermark); past it, the run goes ahead and its lineage says how many were short.",
    )
    run_claim_lease_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="How long an instance's claim on a training request lasts unless renewed (it renews "
        "three times per lease while the run goes on); past it, another instance takes the run over. Keep "
        "it above the state's busy timeout (30 s), which a renewal may wait for.",
    )
    keep_rejected_versions: bool = Field(
        False,
        description="Keep candidates the gate rejected as registered versions. By default they stay as "
        "runs only, so the registered model lists the versions that passed.",
    )
    schedule_check_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="How often the retraining schedule (the policy's `schedule:`) is checked for a due time.",
    )
    schedule_cron: str | None = Field(
        None, description="Overrides the policy's schedule.cron (a cron expression in UTC, or 'off')."
    )
    schedule_every_labels: str | None = Field(
        None, description="Overrides the policy's schedule.every_labels (an integer >= 1, or 'off')."
    )
    schedule_max_champion_age: str | None = Field(
        None, description="Overrides the policy's schedule.max_champion_age ('7d', '12h', seconds, or 'off')."
    )
    max_handler_attempts: int = Field(
        1, ge=1, le=100, description="A failed run is reported as ModelRejected, not retried by the consumer."
    )

    @property
    def consumer_group(self) -> str:
        return self.group_id

    @property
    def experiment(self) -> str:
        return self.experiment_name or self.model_name

    @property
    def schedule_overrides(self) -> dict[str, str]:
        """The TRAINING_SCHEDULE_* values set, by policy field (validated with the policy file)."""
        given = {
            "cron": self.schedule_cron,
            "every_labels": self.schedule_every_labels,
            "max_champion_age": self.schedule_max_champion_age,
        }
        return {field: value for field, value in given.items() if value is not None}

    @property
    def resolved_state_path(self) -> Path:
        return (self.state_path or self.service_dir / "training.db").resolve()
