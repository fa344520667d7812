"""Paper notes: the series the association printed.

- `note_series`: one row per series (its denomination, how many notes, until when they are
  good, who made it, whether it was voided as lost). The series itself is the ledger's
  `note_print` transfer, and each note's state is read from the ledger (the one-time tokens
  its transfers used up), never stored here: this row only lists what was printed.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "note_series",
        sa.Column("id", sa.String(8), primary_key=True),
        sa.Column("denomination", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("valid_until", sa.BigInteger),
        sa.Column("created_by", sa.String(48), sa.ForeignKey("members.id")),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="printed"),
        sa.Column("voided_ms", sa.BigInteger),
        sa.CheckConstraint("denomination IN (100, 200, 500, 1000, 2000)", name="denomination"),
        sa.CheckConstraint("count BETWEEN 1 AND 10000", name="count"),
        sa.CheckConstraint("state IN ('printed', 'voided')", name="state"),
        sa.CheckConstraint("(state = 'voided') = (voided_ms IS NOT NULL)", name="voided"),
    )


def downgrade() -> None:
    op.drop_table("note_series")
