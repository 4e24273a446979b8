"""The audit table as SQLAlchemy Core metadata (the migration creates it; queries use it)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# Index columns are plain strings of at most 256 characters (longer values are left out of the index).
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("topic", String(256), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("kafka_ts_ms", BigInteger, nullable=False),
    Column("key_sha256", String(64)),
    Column("value_sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("event_id", String(36)),
    Column("event_type", String(256)),
    Column("schema_version", Integer),
    Column("occurred_at_us", BigInteger),
    Column("producer", String(256)),
    Column("correlation_id", String(256)),
    Column("causation_id", String(256)),
    Column("entity_id", String(256)),
    Column("model_name", String(256)),
    Column("model_version", String(256)),
    Column("prediction_id", String(256)),
    Column("run_id", String(256)),
    Column("note", String(64)),
    Column("recorded_at_us", BigInteger, nullable=False),
    Column("body", Text),
    Column("row_hash", String(64), nullable=False),
    UniqueConstraint("topic", "partition", "offset", name="uq_audit_events_coordinates"),
)

# Partial indexes (rows without the value are not indexed): records.raw rows skip all of them.
for _name, _columns, _unique in (
    ("uq_audit_events_event_id", ("event_id",), True),
    ("ix_audit_events_event_type", ("event_type", "seq"), False),
    ("ix_audit_events_entity_id", ("entity_id", "seq"), False),
    ("ix_audit_events_model_version", ("model_version", "seq"), False),
    ("ix_audit_events_correlation_id", ("correlation_id", "seq"), False),
    ("ix_audit_events_prediction_id", ("prediction_id",), False),
):
    _where = audit_events.c[_columns[0]].is_not(None)
    Index(
        _name,
        *(audit_events.c[c] for c in _columns),
        unique=_unique,
        sqlite_where=_where,
        postgresql_where=_where,
    )
Index("ix_audit_events_occurred_at", audit_events.c.occurred_at_us)

# One data key per data subject, wrapped (AES-GCM) under a key derived from the subject secret, which
# lives outside the database. NOT chained and NOT append-only: deleting a row is how a subject is erased
# (crypto-shredding); the chained rows keep only ciphertext and the subject's keyed reference.
subject_keys = Table(
    "audit_subject_keys",
    metadata,
    Column("subject_ref", String(64), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)
