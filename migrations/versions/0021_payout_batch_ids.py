"""Payouts: a transfer batch made once per request, and reconversions held while paid alone.

- `payout_batches.client_id`: the treasurer's request id (unique): the same request sent
  again answers the batch it made instead of refusing with nothing to pay.
- `payout_holds`: a reconversion being paid or rejected alone, written before its decision
  is posted; a transfer file made at that moment leaves it out.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("payout_batches", sa.Column("client_id", sa.String(48)))
    op.create_index("uq_payout_batches_client_id", "payout_batches", ["client_id"], unique=True)
    op.create_table(
        "payout_holds",
        sa.Column("reconversion_id", Id, sa.ForeignKey("reconversions.id"), primary_key=True),
        sa.Column("held_by", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("held_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("payout_holds")
    op.drop_index("uq_payout_batches_client_id", table_name="payout_batches")
    with op.batch_alter_table("payout_batches") as batch:
        batch.drop_column("client_id")
