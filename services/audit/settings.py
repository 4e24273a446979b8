"""Settings of the audit service (env prefix `AUDIT_`; platform-wide values come from the base)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from contracts.topics import ANNOTATION_WEBHOOKS, AUDIT_CHECKPOINTS, RECORDS_RAW, topic_names
from servicekit.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore", populate_by_name=True)
    default_fetch_wait_ms: ClassVar[int] = 250  # off a record's way to the online store
    service_name: ClassVar[str] = "audit"

    http_port: int = Field(8107, ge=1, le=65535, description="Port of the HTTP API.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the audit store, e.g. postgresql+psycopg://audit@db/audit. "
        "Default: SQLite (WAL) at <state_dir>/audit/audit.db.",
    )
    database_app_role: str | None = Field(
        None,
        min_length=1,
        max_length=63,
        description="PostgreSQL only: a role that does not own audit_events. The migration grants it "
        "SELECT and INSERT (nothing else), and the service's sessions SET ROLE to it after migrating, so "
        "the service itself cannot UPDATE, DELETE or TRUNCATE even without the triggers. The role must "
        "exist, and the URL's user must own the table (or have migrated it before) and be a member of "
        "the role, or be the role itself. Ignored on SQLite.",
    )
    topics: list[str] = Field(
        default_factory=topic_names,
        description="Topics to capture (JSON list). Default: every topic of the contracts.",
    )
    content_free_topics: list[str] = Field(
        default_factory=lambda: [RECORDS_RAW, ANNOTATION_WEBHOOKS],
        description="Topics whose messages may hold PII: only coordinates, digests and size are stored.",
    )
    group_id: str = Field(
        "audit", min_length=1, description="Consumer group of the capture subscriber (one over every topic)."
    )
    checkpoint_topic: str = Field(AUDIT_CHECKPOINTS, description="Where chain heads are published.")
    checkpoint_interval_s: float = Field(
        30.0, gt=0, description="Publish the chain head this often (when it moved)."
    )
    checkpoint_every_events: int = Field(
        10_000, ge=1, description="...and as soon as this many events were appended since the last one."
    )
    chain_name: str = Field(
        "audit",
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of this store's chain in its signed checkpoints. Verify trusts only checkpoints "
        "of this name, so it never reads the chain's identity from the database it checks.",
    )
    signing_key_file: Path | None = Field(
        None,
        description="Ed25519 private key (PKCS#8 PEM) that signs checkpoints; keep it where the database's "
        "administrators cannot read it. Default <state_dir>/secrets/audit-signing.key, created on first "
        "start in development (with <file>.pub beside it); production refuses to start without it.",
    )
    trusted_public_keys: list[str] = Field(
        default_factory=list,
        description="Public keys (base64 of the raw 32 bytes, JSON list) whose checkpoints verify trusts, "
        "besides <signing_key_file>.pub when present. A verifier without the private key sets this.",
    )
    verify_timeout_s: float = Field(
        60.0, gt=0, description="Longest wait for Kafka while verifying (checkpoints, offsets, records)."
    )
    subject_secret_file: Path | None = Field(
        None,
        description="Hex secret from which subject references and the wrapping of per-subject data keys "
        "are derived (crypto-shredding, see docs/audit.md#erasure). Keep it outside the database and its "
        "backups: losing it makes every sealed value unreadable. Default <state_dir>/secrets/"
        "audit-subject.secret, created on first use in development; production needs an existing file.",
    )
    max_page_size: int = Field(1000, ge=1, le=100_000, description="Largest `limit` a query may ask for.")
    default_page_size: int = Field(100, ge=1, description="`limit` of a query that names none.")
    verify_workers: int = Field(
        1, ge=1, le=64, description="Processes the /verify endpoint uses (the CLI defaults to one per core)."
    )
    max_handler_attempts: int = Field(
        100,
        ge=1,
        le=100,
        description="Attempts (with backoff up to 5 s) at a batch in which no record goes through, "
        "before its records are dead-lettered: high, because a store failing in a way the kit does not "
        "recognise as an outage should stall the audit trail, not thin it. A record that fails while "
        "its neighbours go through (or alone, on a topic handled within the last minute) is set aside in "
        "seconds whatever this is (servicekit/isolation.py).",
    )
    batch_records: int = Field(
        2000, ge=1, le=50_000, description="Most records appended per transaction (one commit per batch)."
    )

    @model_validator(mode="after")
    def _production_needs_the_signing_key(self) -> AuditSettings:
        if self.environment == "production" and not self.resolved_signing_key_file.is_file():
            raise ValueError(
                f"production needs the audit signing key at {self.resolved_signing_key_file} "
                "(AUDIT_SIGNING_KEY_FILE); it is never generated outside development"
            )
        return self

    @property
    def resolved_signing_key_file(self) -> Path:
        return (self.signing_key_file or self.state_dir / "secrets" / "audit-signing.key").resolve()

    @property
    def resolved_subject_secret_file(self) -> Path:
        return (self.subject_secret_file or self.state_dir / "secrets" / "audit-subject.secret").resolve()

    def capture_groups(self) -> dict[str, str]:
        """Consumer group of each captured topic: the same one for all (one consumer, see app.py)."""
        return dict.fromkeys(self.topics, self.consumer_group)

    @property
    def consumer_group(self) -> str:
        return self.group_id

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.service_dir / 'audit.db').resolve()}"
