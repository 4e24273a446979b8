"""Settings of the drift service (env prefix `DRIFT_`; platform-wide values come from the base)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from contracts.topics import (
    DRIFT_DETECTED,
    LABELS_OBSERVED,
    MODEL_PROMOTED,
    MODEL_TRAINED,
    PREDICTIONS_MADE,
    RECORDS_CLEAN,
)
from feature_repo.names import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from servicekit.settings import PLACEHOLDER_SECRETS, ServiceSettings
from servicekit.signed_links import LINK_SECRET_FILE, MAX_TTL_S, SECRET_MIN_CHARS, read_secret


class DriftSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFT_", extra="ignore", populate_by_name=True)
    default_fetch_wait_ms: ClassVar[int] = 250  # off a record's way to the online store
    service_name: ClassVar[str] = "drift"

    http_port: int = Field(8105, ge=1, le=65535, description="Port of the HTTP API.")
    group_id: str = Field("drift", min_length=1, description="Kafka consumer group prefix of the service.")
    records_topic: str = Field(RECORDS_CLEAN, description="Topic RecordCleaned events are read from.")
    predictions_topic: str = Field(PREDICTIONS_MADE, description="Topic PredictionMade events are read from.")
    labels_topic: str = Field(LABELS_OBSERVED, description="Topic LabelObserved events are read from.")
    drift_topic: str = Field(DRIFT_DETECTED, description="Topic DriftDetected events go to.")
    trained_topic: str = Field(
        MODEL_TRAINED, description="Topic ModelTrained events (training windows) come from."
    )
    promoted_topic: str = Field(
        MODEL_PROMOTED, description="Topic ModelPromoted events (the champion) come from."
    )
    dataset: str = Field(
        "loan_applications", min_length=1, description="Records of other datasets are ignored."
    )
    numeric_features: list[str] = Field(
        list(NUMERIC_FEATURES), description="Features watched with the numeric detector (RankCusum)."
    )
    categorical_features: list[str] = Field(
        list(CATEGORICAL_FEATURES), description="Features watched with the ChiSquare detector."
    )
    batch_records: int = Field(500, ge=1, le=10_000, description="Records fetched per handler call.")
    state_path: Path | None = Field(
        None,
        description="SQLite file of detector state, the label join and the outbox. "
        "Default: <state_dir>/drift/drift.db.",
    )
    # Data and prediction drift (windowed detectors).
    reference_size: int = Field(500, ge=10, description="Values in a detector's reference window.")
    window_size: int = Field(200, ge=10, description="Values in the window tested against the reference.")
    block: int = Field(50, ge=1, description="The window slides (and is tested) every `block` values.")
    mean_shift_z: float = Field(6.0, gt=0, description="MeanShift alarm threshold (z of mean or variance).")
    numeric_detector: str = Field(
        "RankCusum",
        pattern="^(RankCusum|MeanShift)$",
        description="Detector of numeric features: RankCusum (a CUSUM of rank normal scores) or MeanShift.",
    )
    cusum_reference_size: int = Field(
        1000, ge=100, description="RankCusum: values in its reference (re-learnt after each alarm)."
    )
    cusum_shift: float = Field(
        0.35,
        gt=0,
        le=2,
        description="RankCusum allowance k (sd): half the smallest mean shift to catch fast.",
    )
    false_alarms_per_100k: float = Field(
        1.0,
        gt=0,
        le=1000,
        description="RankCusum: false alarms per 100k records over all watched features together; "
        "each feature's threshold is calibrated for ARL0 = 100k / this x the number of features.",
    )
    chi_square_reference: int = Field(
        2000, ge=10, le=100_000, description="Values in the reference of the categorical ChiSquare test."
    )
    chi_square_window: int = Field(500, ge=10, description="Window of the categorical ChiSquare test.")
    chi_square_alpha: float = Field(
        3e-5, gt=0, lt=1, description="ChiSquare (homogeneity) test level per check, per feature."
    )
    confirmations: int = Field(2, ge=1, description="Flags needed within `debounce` updates for an alarm.")
    # Concept drift (error stream).
    concept_detector: str = Field(
        "CUSUM", pattern="^(CUSUM|HDDMA|ADWIN)$", description="Detector on the error stream."
    )
    concept_shift: float = Field(0.1, gt=0, lt=1, description="CUSUM: rise of the error rate to detect.")
    concept_threshold: float = Field(
        12.0, gt=0, description="CUSUM threshold: about e^threshold updates between false alarms."
    )
    concept_confidence: float = Field(1e-4, gt=0, lt=1, description="HDDM_A drift confidence / ADWIN delta.")
    # Shared by every monitor.
    warm_up: int = Field(200, ge=0, description="Updates after a (re)start during which no alarm is raised.")
    debounce: int = Field(400, ge=1, description="Span (updates) within which `confirmations` are counted.")
    cooldown: int = Field(2000, ge=0, description="Updates after an alarm before the next may be raised.")
    # Label join.
    join_max_pending: int = Field(100_000, ge=1, description="Predictions (and labels) waiting, at most.")
    join_ttl_s: float = Field(30 * 24 * 3600, gt=0, description="Event-time wait for a label, at most.")
    positive_label: str = Field("bad", description="Label value meaning the positive class.")
    positive_decision: str = Field(
        "decline", description="Decision meaning the positive class was predicted."
    )
    # Performance estimated before labels (domain/estimate.py).
    estimate_window: int = Field(500, ge=50, le=100_000, description="Served predictions per CBPE window.")
    estimate_min_labelled: int = Field(
        100, ge=10, description="Labels a window needs before its estimate is judged against them."
    )
    estimate_drop_limit: float = Field(
        0.03, gt=0, lt=1, description="Estimated accuracy lost against the version's first windows to flag."
    )
    estimate_windows_kept: int = Field(
        40, ge=2, le=1000, description="CBPE windows kept per version: a later label finds no window."
    )

    # Evidently reports (services/drift/reports.py).
    report_interval_s: float = Field(
        300.0, ge=0, description="A scheduled report every this many seconds when new records came; 0: none."
    )
    report_window: int = Field(500, ge=10, le=50_000, description="Latest clean records a report tests.")
    records_kept: int = Field(
        5000, ge=10, le=200_000, description="Latest clean records kept (watched features only) for reports."
    )
    reference_max: int = Field(
        1000,
        ge=10,
        le=50_000,
        description="Rows of a reference, at most; also the first records kept for good.",
    )
    standby_poll_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often a standby instance tries to take the active lease (one instance consumes).",
    )
    reports_kept: int = Field(
        50, ge=1, le=10_000, description="Reports kept on disk (about 4 MB of HTML each)."
    )
    public_url: str | None = Field(
        None,
        description="Base URL ops reach this service at, for `report_url` in DriftDetected. "
        "Default: http://<http_host>:<http_port>.",
    )

    # Reports in a browser (services/drift/browser.py, servicekit/signed_links.py).
    link_secret: SecretStr | None = Field(
        None,
        description=f"Secret that signs the browser links to reports (at least {SECRET_MIN_CHARS} "
        "characters; never logged). Default: the contents of `link_secret_file`.",
    )
    link_secret_file: Path | None = Field(
        None,
        description=f"File holding that secret. Default <state_dir>/secrets/{LINK_SECRET_FILE}, written "
        "once (0600) by `mlops up`. In development with neither, the service signs with a random secret "
        "of its own (links then end with the process); production refuses to start without one.",
    )
    link_ttl_s: int = Field(
        900,
        ge=30,
        le=MAX_TTL_S,
        description="How long a signed link opens when its request names no `ttl_s`.",
    )

    @model_validator(mode="after")
    def _each_stream_has_its_own_topic(self) -> DriftSettings:
        # One consumer reads the three streams and checks each record's type against its topic.
        topics = (self.records_topic, self.predictions_topic, self.labels_topic)
        if len(set(topics)) != len(topics):
            raise ValueError(f"the records, predictions and labels topics must differ, got {topics}")
        return self

    @model_validator(mode="after")
    def _link_secret_is_strong_and_present_in_production(self) -> DriftSettings:
        if self.link_secret is not None:
            value = self.link_secret.get_secret_value()
            if len(value) < SECRET_MIN_CHARS or value.lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"DRIFT_LINK_SECRET needs at least {SECRET_MIN_CHARS} characters")
            return self
        named = self.environment == "production" or self.link_secret_file is not None
        if named and not self.resolved_link_secret_file.is_file():
            raise ValueError(
                f"no link secret at {self.resolved_link_secret_file} (DRIFT_LINK_SECRET_FILE) nor "
                "DRIFT_LINK_SECRET: production never generates one, and a named file must exist"
            )
        return self

    @property
    def resolved_link_secret_file(self) -> Path:
        return (self.link_secret_file or self.state_dir / "secrets" / LINK_SECRET_FILE).resolve()

    def link_signing_secret(self) -> str | None:
        """The configured secret, or the file's; None when there is neither (development only)."""
        if self.link_secret is not None:
            return self.link_secret.get_secret_value()
        path = self.resolved_link_secret_file
        return read_secret(path) if path.is_file() else None

    @property
    def consumer_group(self) -> str:
        return self.group_id

    @property
    def reports_dir(self) -> Path:
        return (self.service_dir / "reports").resolve()

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    @property
    def resolved_state_path(self) -> Path:
        return (self.state_path or self.service_dir / "drift.db").resolve()
