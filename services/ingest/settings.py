"""Settings of the ingest service (env prefix `INGEST_`, platform-wide values unprefixed)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from contracts.topics import RECORDS_CLEAN, RECORDS_RAW, RECORDS_REJECTED
from servicekit.broker import MAX_REQUEST_BYTES
from servicekit.settings import PLACEHOLDER_SECRETS, ServiceSettings

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
DEV_SALT = "dev-only-ingest-salt"
DEV_ID_KEY = "dev-only-ingest-identifier-key"
# Room for Kafka's record and batch headers, the key and our headers, and for the outcome event's
# envelope around a record: a raw record of `max_record_bytes` always fits the broker's limit.
RECORD_HEADROOM_BYTES = 64 * 1024


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", populate_by_name=True)
    service_name: ClassVar[str] = "ingest"

    http_port: int = Field(8101, ge=1, le=65535, description="Port of the HTTP API.")
    schema_file: Path = Field(
        SCHEMAS_DIR / "loan_applications.yaml", description="The dataset schema (YAML) records must match."
    )
    pii_salt: SecretStr = Field(
        SecretStr(DEV_SALT),
        description="Key of the salted (HMAC-SHA256) hash PII policy. Keep it stable: hashes must join "
        "across restarts. The development default is refused in production.",
    )
    id_key: SecretStr = Field(
        SecretStr(DEV_ID_KEY),
        description="Key of the HMAC-SHA256 pseudonyms of identifier columns declared `identifier: "
        "pseudonymise`. Keep it stable and out of the repo; refused in production when it is the default.",
    )
    id_key_file: Path | None = Field(
        None, description="File holding the identifier key (a mounted secret); wins over INGEST_ID_KEY."
    )
    max_record_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=MAX_REQUEST_BYTES - RECORD_HEADROOM_BYTES,
        description="Larger raw records are rejected (too_large), over Kafka and HTTP alike. At most the "
        "broker's message limit (servicekit.broker.MAX_REQUEST_BYTES, 8 MiB) less 64 KiB of headroom.",
    )
    http_max_records: int = Field(1000, ge=1, le=100_000, description="Most records in one POST /records.")
    http_max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest POST /records body in bytes (a batch: each record is its own Kafka message).",
    )
    ledger_path: Path | None = Field(
        None,
        description="SQLite ledger of entity ids and content digests (repeated ids: duplicate or "
        "update). Default: <state_dir>/ingest/ledger.db.",
    )
    text_batch_size: int = Field(128, ge=1, le=4096, description="Texts per spaCy nlp.pipe batch.")
    text_cache_size: int = Field(
        4096,
        ge=0,
        le=1_000_000,
        description="Scrub results kept for texts that repeat (boilerplate notes), keyed by a BLAKE2b "
        "digest of the text; 0 turns the cache off.",
    )
    group_id: str = Field("ingest", min_length=1, description="Kafka consumer group of the service.")
    raw_topic: str = Field(RECORDS_RAW, description="Topic of raw records (plain JSON, not enveloped).")
    clean_topic: str = Field(RECORDS_CLEAN, description="Topic RecordCleaned events go to.")
    rejected_topic: str = Field(RECORDS_REJECTED, description="Topic RecordRejected events go to.")
    publish_retry_max_s: float = Field(
        5.0, gt=0, description="Longest pause between attempts to publish outcomes while Kafka is down."
    )

    @property
    def consumer_group(self) -> str:
        return self.group_id

    @property
    def resolved_ledger_path(self) -> Path:
        return (self.ledger_path or self.service_dir / "ledger.db").resolve()

    def identifier_key(self) -> bytes:
        """The pseudonymisation key, read when a schema asks for it (not every deployment needs one)."""
        if self.id_key_file is not None:
            key = self.id_key_file.read_bytes().strip()
        else:
            key = self.id_key.get_secret_value().encode()
        if self.environment == "production" and (key == DEV_ID_KEY.encode() or len(key) < 16):
            raise ValueError("INGEST_ID_KEY(_FILE) is the development default or shorter than 16 bytes")
        return key

    @model_validator(mode="after")
    def _refuse_dev_salt_in_production(self) -> IngestSettings:
        salt = self.pii_salt.get_secret_value()
        if self.environment == "production" and (salt == DEV_SALT or salt.lower() in PLACEHOLDER_SECRETS):
            raise ValueError("INGEST_PII_SALT is the development placeholder; refused in production")
        if self.environment == "production" and len(salt) < 16:
            raise ValueError("INGEST_PII_SALT must be at least 16 characters in production")
        return self
