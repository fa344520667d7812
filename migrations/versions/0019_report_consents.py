"""The merchants' consents to be named in the treasurer's reports (`audits/reports/models.py`).

- `report_consents`: one row each time a merchant gives or withdraws their consent to be
  listed among the most active merchants, with when; the latest row is their answer.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "report_consents",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("listed", sa.Boolean, nullable=False),
        sa.Column("recorded_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_report_consents_member", "report_consents", ["member_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_report_consents_member", "report_consents")
    op.drop_table("report_consents")
