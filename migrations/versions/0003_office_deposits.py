"""Exchange offices' cash deposits as the treasurer reconciles them with the bank, and
indexes to find redemptions and deposits that lack their bookkeeping row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Partial indexes over the few transfers whose bookkeeping rows are written after them, so
# that finding those without a row (after a crash in between) never scans every payment.
KIND_INDEXES = {
    "ix_transfers_redemption": "redemption",
    "ix_transfers_cash_deposit": "cash_deposit",
}


def upgrade() -> None:
    op.create_table(
        "office_deposits",
        sa.Column("transfer_id", Id, sa.ForeignKey("transfers.id"), primary_key=True),
        sa.Column("office", sa.String(48), nullable=False),
        sa.Column("slip_ref", sa.String(64)),
        sa.Column("recorded_by", sa.String(48), sa.ForeignKey("members.id")),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("bank_ref", sa.String(128)),
        sa.Column("reconciled_by", sa.String(48), sa.ForeignKey("members.id")),
        sa.Column("reconciled_ms", sa.BigInteger),
        sa.CheckConstraint(
            "(reconciled_ms IS NULL) = (bank_ref IS NULL)", name="reconciled_with_reference"
        ),
    )
    op.create_index("ix_office_deposits_office", "office_deposits", ["office"])
    for name, kind in KIND_INDEXES.items():
        where = sa.text(f"kind = '{kind}'")
        op.create_index(name, "transfers", ["id"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name in KIND_INDEXES:
        op.drop_index(name, "transfers")
    op.drop_index("ix_office_deposits_office", "office_deposits")
    op.drop_table("office_deposits")
