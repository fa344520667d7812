"""The AMAP: a subscription starts with its first payment (when it was recorded), each
instalment covers a number of distributions, and each payment says when it was recorded.

Revision ID: amap_0002
Revises: amap_0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "amap_0002"
down_revision = "amap_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("amap_subscriptions", sa.Column("effective_ms", sa.BigInteger))
    op.add_column("amap_subscriptions", sa.Column("instalment_size", sa.Integer))
    op.add_column("amap_payments", sa.Column("paid_ms", sa.BigInteger))
    # Subscriptions made before: they started when they were made, paid as they were.
    op.execute("UPDATE amap_subscriptions SET effective_ms = created_ms")
    op.execute("UPDATE amap_payments SET paid_ms = 0")


def downgrade() -> None:
    with op.batch_alter_table("amap_payments") as batch:
        batch.drop_column("paid_ms")
    with op.batch_alter_table("amap_subscriptions") as batch:
        batch.drop_column("instalment_size")
        batch.drop_column("effective_ms")
