"""The crowdfunding plugin's campaigns, pledges and movements.

Revision ID: crowdfunding_0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "crowdfunding_0001"
down_revision = None
branch_labels = ("crowdfunding",)
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "crowdfunding_campaigns",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(64), nullable=False, index=True),
        sa.Column("beneficiary", sa.String(64), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("goal", sa.BigInteger, nullable=False),
        sa.Column("days", sa.Integer, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("match_per_unit_bp", sa.Integer, nullable=False, server_default="0"),
        sa.Column("match_cap", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("opens_ms", sa.BigInteger),
        sa.Column("deadline_ms", sa.BigInteger),
        sa.Column("closed_ms", sa.BigInteger),
        sa.Column("raised", sa.BigInteger),
        sa.Column("picture", sa.LargeBinary),
        sa.CheckConstraint("goal > 0", name="ck_crowdfunding_campaigns_goal"),
        sa.CheckConstraint("days BETWEEN 1 AND 60", name="ck_crowdfunding_campaigns_days"),
        sa.CheckConstraint(
            "match_per_unit_bp >= 0 AND match_cap >= 0", name="ck_crowdfunding_campaigns_match"
        ),
        sa.CheckConstraint(
            "state IN ('proposed', 'rejected', 'open', 'funded', 'missed')",
            name="ck_crowdfunding_campaigns_state",
        ),
    )
    op.create_table(
        "crowdfunding_payments",
        sa.Column("transfer_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("escrow", sa.String(96), nullable=False, index=True),
        sa.Column("campaign", sa.BigInteger, index=True),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("counted", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_crowdfunding_payments_amount"),
    )
    op.create_table(
        "crowdfunding_movements",
        sa.Column("transfer_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.BigInteger, nullable=False, index=True),
        sa.Column("escrow", sa.String(96), nullable=False, index=True),
        sa.Column("campaign", sa.BigInteger, index=True),
        sa.Column("to_account", sa.String(96), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("rule", sa.String(64)),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_crowdfunding_movements_amount"),
    )
    op.create_table(
        "crowdfunding_updates",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign", sa.BigInteger, nullable=False, index=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "crowdfunding_tiers",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign", sa.BigInteger, nullable=False, index=True),
        sa.Column("minimum", sa.BigInteger, nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("most_backers", sa.Integer),
        sa.CheckConstraint("minimum > 0", name="ck_crowdfunding_tiers_minimum"),
    )


def downgrade() -> None:
    for table in (
        "crowdfunding_tiers",
        "crowdfunding_updates",
        "crowdfunding_movements",
        "crowdfunding_payments",
        "crowdfunding_campaigns",
    ):
        op.drop_table(table)
