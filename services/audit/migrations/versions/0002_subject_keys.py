"""The per-subject data keys of crypto-shredding: a plain table (no chain, no append-only guards),
because deleting a subject's key is how the subject is erased.

Rows chained before this revision were stored in the clear and stay so (the chain forbids rewriting
them); see "Erasure" in docs/audit.md.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_subject_keys",
        sa.Column("subject_ref", sa.String(64), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    # Dropping the keys would erase every subject at once; refuse, as 0001 does.
    raise RuntimeError("dropping the subject keys would shred every subject; refusing to downgrade")
