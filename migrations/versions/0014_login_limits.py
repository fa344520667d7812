"""Login limits that slow an attacker without locking a member out.

- `login_failures.blocked_until_ms`: before this moment a subject may not try again (the
  growing delay of an (email, address) or (email, device) pair; zero for the others).
- `login_devices`: the browsers a member logged in from (a long-lived cookie, only its hash
  kept). A known device is spared the per-email and per-address ceilings that an attacker
  trying one member's email from many addresses, or many emails from one, runs into.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_failures") as batch:
        batch.add_column(
            sa.Column("blocked_until_ms", sa.BigInteger, nullable=False, server_default="0")
        )
    op.create_table(
        "login_devices",
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("last_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_login_devices_member_id", "login_devices", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_login_devices_member_id", "login_devices")
    op.drop_table("login_devices")
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_column("blocked_until_ms")
