"""The tool library's loans.

Revision ID: tools_0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tools_0001"
down_revision = None
branch_labels = ("tools",)
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tool_loans",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("member", sa.String(64), nullable=False, index=True),
        sa.Column("tool", sa.String(80), nullable=False),
        sa.Column("deposit", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("deposit_transfer", sa.BigInteger),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("reminders", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint("deposit > 0", name="ck_tool_loans_deposit"),
        sa.CheckConstraint(
            "state IN ('waiting_deposit', 'out', 'returned', 'lost')", name="ck_tool_loans_state"
        ),
    )


def downgrade() -> None:
    op.drop_table("tool_loans")
