"""The append-only audit table, its indexes, and the guards that refuse UPDATE and DELETE.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GUARDED = "audit_events"

SQLITE_GUARDS = [
    f"""CREATE TRIGGER {GUARDED}_no_update BEFORE UPDATE ON {GUARDED}
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER {GUARDED}_no_delete BEFORE DELETE ON {GUARDED}
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END""",
]

POSTGRES_GUARDS = [
    """CREATE OR REPLACE FUNCTION audit_events_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP; END $$""",
    f"""CREATE TRIGGER {GUARDED}_no_update_delete BEFORE UPDATE OR DELETE ON {GUARDED}
        FOR EACH ROW EXECUTE FUNCTION audit_events_refuse()""",
    f"""CREATE TRIGGER {GUARDED}_no_truncate BEFORE TRUNCATE ON {GUARDED}
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse()""",
]


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid
    op.create_table(
        GUARDED,
        sa.Column("seq", big, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("kafka_ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("key_sha256", sa.String(64)),
        sa.Column("value_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(36)),
        sa.Column("event_type", sa.String(256)),
        sa.Column("schema_version", sa.Integer()),
        sa.Column("occurred_at_us", sa.BigInteger()),
        *[
            sa.Column(name, sa.String(256))
            for name in (
                "producer",
                "correlation_id",
                "causation_id",
                "entity_id",
                "model_name",
                "model_version",
                "prediction_id",
                "run_id",
            )
        ],
        sa.Column("note", sa.String(64)),
        sa.Column("recorded_at_us", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text()),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("topic", "partition", "offset", name="uq_audit_events_coordinates"),
    )
    # Partial indexes: a row without the value (e.g. every records.raw row) is not indexed.
    for name, columns, unique in (
        ("uq_audit_events_event_id", ["event_id"], True),
        ("ix_audit_events_event_type", ["event_type", "seq"], False),
        ("ix_audit_events_entity_id", ["entity_id", "seq"], False),
        ("ix_audit_events_model_version", ["model_version", "seq"], False),
        ("ix_audit_events_correlation_id", ["correlation_id", "seq"], False),
        ("ix_audit_events_prediction_id", ["prediction_id"], False),
    ):
        where = sa.text(f"{columns[0]} IS NOT NULL")
        op.create_index(name, GUARDED, columns, unique=unique, sqlite_where=where, postgresql_where=where)
    op.create_index("ix_audit_events_occurred_at", GUARDED, ["occurred_at_us"])
    dialect = op.get_bind().dialect.name
    for statement in (
        SQLITE_GUARDS if dialect == "sqlite" else POSTGRES_GUARDS if dialect == "postgresql" else []
    ):
        op.execute(statement)


def downgrade() -> None:
    # The audit log is never dropped by a migration run; do it by hand if you truly mean to.
    raise RuntimeError("the audit table is append-only; refusing to downgrade")
