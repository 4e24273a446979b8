"""Base settings every service extends with its own env prefix (e.g. `INGEST_`).

Platform-wide values (the Kafka cluster, the API-key registry, the environment) use fixed,
unprefixed names so one export configures every service; per-service values use the prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.replay import ReplayPlan

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "password", "admin"}


class ServiceSettings(BaseSettings):
    """Subclass per service: set `service_name` and `model_config = SettingsConfigDict(env_prefix=...)`."""

    # populate_by_name: code and tests may pass fields by name even where the env name is an alias.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)
    service_name: ClassVar[str] = "service"

    environment: Literal["development", "production"] = Field(
        "development",
        validation_alias=AliasChoices("MLOPS_ENV"),
        description="`production` refuses development keys and placeholder secrets.",
    )
    log_level: str = Field(
        "INFO", validation_alias=AliasChoices("MLOPS_LOG_LEVEL"), description="Root log level."
    )
    gc_young_threshold: int = Field(
        10_000,
        ge=100,
        le=1_000_000,
        validation_alias=AliasChoices("MLOPS_GC_YOUNG_THRESHOLD"),
        description="Allocations between two young garbage collections in a service's process (Python's"
        " default is 700; servicekit/heap.py).",
    )
    # A busy batch consumer's fetch wait when `fetch_wait_ms` is not set. The services on a record's
    # way to the online store (ingest, features) keep the kit's 50 ms; the others gather fuller batches
    # (servicekit/fetch_pace.py says what a fetch and a batch cost at a low rate).
    default_fetch_wait_ms: ClassVar[int] = 50
    fetch_wait_ms: int | None = Field(
        None,
        ge=1,
        le=5_000,
        description="How long the broker may hold a busy batch consumer's fetch for a fuller batch (env"
        " <SERVICE>_FETCH_WAIT_MS); unset: 50 ms for ingest and features, 250 for the others.",
    )
    quiet_fetch_wait_ms: int = Field(
        500,
        ge=1,
        le=10_000,
        validation_alias=AliasChoices("MLOPS_QUIET_FETCH_WAIT_MS"),
        description="How long the broker may hold a fetch of a batch consumer that has had nothing to"
        " do for 2 s (servicekit/fetch_pace.py); at most the service's busy wait (fetch_wait_ms) turns"
        " pacing off.",
    )
    cpu_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="CPU niceness the service runs at (servicekit/priority.py): `mlops up` sets it from"
        " MLOPS_STREAM_NICE for ingest and features and from MLOPS_TRAILING_NICE for the services that"
        " trail the stream, so serving's requests come first and records come online next.",
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka cluster to use (host:port, comma-separated).",
    )

    @property
    def kafka_servers(self) -> list[str]:
        """The bootstrap servers one by one: aiokafka takes a list, and reads a comma-separated string
        as one host name."""
        return split_servers(self.kafka_bootstrap_servers)

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL"), description="Client security."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", validation_alias=AliasChoices("KAFKA_SASL_MECHANISM"), description="SASL mechanism."
    )
    kafka_sasl_username: str | None = Field(
        None, validation_alias=AliasChoices("KAFKA_SASL_USERNAME"), description="SASL user."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("KAFKA_SASL_PASSWORD"),
        description="SASL password (never logged).",
    )
    api_keys_file: Path | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_API_KEYS_FILE"),
        description="JSON list of {name, role, sha256}: hashed API keys. Plain keys never reach a service.",
    )
    api_keys_json: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_API_KEYS"),
        description="The same JSON inline (e.g. from a secret store), used when no file is given.",
    )
    state_dir: Path = Field(
        Path(".local"),
        validation_alias=AliasChoices("MLOPS_STATE_DIR"),
        description="Root of local state; a service keeps its files under <state_dir>/<service_name>.",
    )
    feast_repo_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_FEAST_REPO"),
        description="Feature store folder (registry, SQLite online store, Parquet offline store); "
        "default <state_dir>/feast.",
    )
    feast_project: str = Field(
        "mlops",
        min_length=1,
        validation_alias=AliasChoices("MLOPS_FEAST_PROJECT"),
        description="Feast project.",
    )
    feast_online_store: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("MLOPS_FEAST_ONLINE_STORE"),
        description='Feast online store config as JSON, e.g. {"type": "redis", "connection_string": '
        '"redis:6379"}; empty: SQLite in the feature store folder. Shared, so features, training '
        "and serving read one store.",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI"),
        description="MLflow tracking and registry; default SQLite at <state_dir>/mlflow/mlflow.db.",
    )
    model_name: str = Field(
        "credit-risk",
        validation_alias=AliasChoices("MLOPS_MODEL_NAME"),
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Registered model the platform trains, gates and serves.",
    )
    http_host: str = Field("127.0.0.1", description="Address the HTTP API binds to.")
    http_port: int = Field(8100, ge=1, le=65535, description="Port of the HTTP API.")
    kafka_connect_wait_s: float = Field(
        600.0, gt=0, description="How long a starting service waits for the broker before it gives up."
    )
    max_handler_attempts: int = Field(
        3,
        ge=1,
        le=100,
        description="Attempts at a batch in which no record goes through before its "
        "records are dead-lettered (a record failing while its neighbours go through: 3 calls alone).",
    )
    replay: ReplayPlan | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_REPLAY"),
        description="Set by `mlops replay` only (JSON, servicekit/replay.py): this process replays a "
        "window of the log into a fresh group and publishes nothing unless the plan says so.",
    )

    @property
    def busy_fetch_wait_ms(self) -> int:
        return self.fetch_wait_ms or self.default_fetch_wait_ms

    @property
    def service_dir(self) -> Path:
        return self.state_dir / self.service_name

    @property
    def feature_store_dir(self) -> Path:
        return (self.feast_repo_dir or self.state_dir / "feast").resolve()

    @property
    def mlflow_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.state_dir / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_root(self) -> Path:
        """Where runs store artifacts with the local default (MLflow would otherwise write ./mlruns)."""
        return (self.state_dir / "mlflow" / "artifacts").resolve()

    @property
    def consumer_group(self) -> str:
        return self.service_name

    @model_validator(mode="after")
    def _refuse_placeholders_outside_development(self) -> ServiceSettings:
        if self.environment != "production":
            return self
        if self.kafka_security_protocol.startswith("SASL"):
            password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            if password.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("KAFKA_SASL_PASSWORD is empty or a placeholder; refused in production")
        if self.api_keys_file is None and self.api_keys_json is None:
            raise ValueError("production needs MLOPS_API_KEYS_FILE or MLOPS_API_KEYS")
        return self


def split_servers(servers: str) -> list[str]:
    """ "host:port,host:port" as ["host:port", "host:port"]."""
    return [server.strip() for server in servers.split(",") if server.strip()]
