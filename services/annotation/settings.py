"""Settings of the annotation service (env prefix `ANNOTATION_`; platform-wide values unprefixed)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from contracts.topics import (
    ANNOTATION_WEBHOOKS,
    DRIFT_DETECTED,
    EXPLANATION_PRODUCED,
    LABELS_OBSERVED,
    PREDICTIONS_MADE,
)
from servicekit.settings import ServiceSettings

DEFAULT_POLICY = Path(__file__).resolve().parent / "policy.yaml"
WEBHOOK_KEY_NAME = "label-studio-webhook"


class AnnotationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ANNOTATION_", extra="ignore", populate_by_name=True)
    default_fetch_wait_ms: ClassVar[int] = 250  # off a record's way to the online store
    service_name: ClassVar[str] = "annotation"

    http_port: int = Field(8108, ge=1, le=65535, description="Port of the HTTP API.")
    label_studio_url: str = Field(
        "http://127.0.0.1:8200", description="Label Studio's base URL (its API is under /api)."
    )
    label_studio_credentials_file: Path | None = Field(
        None,
        description="JSON with Label Studio's API `token` (infra/label_studio.py writes it). "
        "Default <state_dir>/secrets/label-studio.json.",
    )
    label_studio_timeout_s: float = Field(10.0, gt=0, description="Timeout of one call to Label Studio.")
    policy_file: Path = Field(
        DEFAULT_POLICY,
        description="The sampling policy (YAML) ops edit; default services/annotation/policy.yaml.",
    )
    dataset: str = Field("loan_applications", min_length=1, description="Dataset of the labels published.")
    project_title_prefix: str = Field(
        "Review: ",
        max_length=40,
        description="A model's Label Studio project is titled <prefix><model name>.",
    )
    predictions_topic: str = Field(PREDICTIONS_MADE, description="Topic PredictionMade events come from.")
    drift_topic: str = Field(DRIFT_DETECTED, description="Topic DriftDetected events come from.")
    explanations_topic: str = Field(
        EXPLANATION_PRODUCED, description="Topic ExplanationProduced events come from."
    )
    labels_topic: str = Field(
        LABELS_OBSERVED, description="Topic LabelObserved is read from (clients') and published to (ours)."
    )
    webhooks_topic: str = Field(ANNOTATION_WEBHOOKS, description="Raw topic the webhook route appends to.")
    poll_interval_s: float = Field(
        10.0, gt=0, description="How often open tasks are read back from Label Studio (the guaranteed path)."
    )
    import_batch_size: int = Field(100, ge=1, le=1000, description="Tasks imported per Label Studio call.")
    consume_batch_size: int = Field(500, ge=1, le=10_000, description="Predictions taken per Kafka batch.")
    max_backoff_s: float = Field(
        30.0, gt=0, description="Longest wait between retries to reach Label Studio."
    )
    threshold_retry_s: float = Field(
        60.0, gt=0, description="After a model card could not be read, wait this long before trying again."
    )
    webhook_api_key: SecretStr | None = Field(
        None,
        description="The key Label Studio sends back in X-API-Key (a key with the webhook role, which "
        f"opens only that route). Default: the `{WEBHOOK_KEY_NAME}` entry of <state_dir>/secrets/"
        "api-keys.json; none: polling only.",
    )
    webhook_url: str | None = Field(
        None,
        description="Where Label Studio posts webhooks; default http://<http_host>:<http_port>/label-studio/webhook.",
    )
    max_webhook_bytes: int = Field(
        1_048_576, ge=1024, description="Largest webhook body accepted (413 beyond)."
    )
    max_comment_chars: int = Field(2000, ge=0, description="An analyst's comment is kept up to this length.")
    recent_tasks: int = Field(50, ge=1, le=1000, description="Tasks listed by GET /tasks, newest first.")
    max_remembered: int = Field(
        200_000, ge=100, description="Explanations and client labels remembered (oldest dropped beyond)."
    )

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def credentials_path(self) -> Path:
        return self.label_studio_credentials_file or self.secrets_dir / "label-studio.json"

    @property
    def pseudonym_key_path(self) -> Path:
        return self.secrets_dir / "annotation-pseudonym.key"

    @property
    def hook_url(self) -> str:
        return self.webhook_url or f"http://{self.http_host}:{self.http_port}/label-studio/webhook"
