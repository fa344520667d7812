"""Counter devices: a tablet at the till paired with its shop.

- `sessions.scope`, `sessions.key_id`: a session is a person's (`wallet`) or a counter
  device's (`pos`), which acts as a `pos` token does and names the counter key it was paired
  with (unpairing ends the sessions holding that key).
- `counter_devices`: the devices a merchant named and paired. A row is made with a pairing
  code (only its hash is kept), good once for ten minutes: using it sets `used_ms` and the
  device's key by one conditional UPDATE, so two devices sending the same code at once end
  with one pairing; `key_id` is unique besides.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # On SQLite the table is rebuilt with its constraints.
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("scope", sa.String(16), nullable=False, server_default="wallet"))
        batch.add_column(sa.Column("key_id", sa.String(32)))
        batch.create_check_constraint("scope", "scope IN ('wallet', 'pos')")
        batch.create_check_constraint("counter_key", "(scope = 'pos') = (key_id IS NOT NULL)")
    op.create_index("ix_sessions_key_id", "sessions", ["key_id"])
    op.create_table(
        "counter_devices",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("label", sa.String(80), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("code_expires_ms", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("used_ms", sa.BigInteger),
        sa.Column("key_id", sa.String(32), unique=True),
        sa.Column("paired_ms", sa.BigInteger),
        sa.Column("removed_ms", sa.BigInteger),
        sa.CheckConstraint("length(label) > 0", name="label"),
        sa.CheckConstraint("(used_ms IS NULL) = (key_id IS NULL)", name="used_by_key"),
        sa.CheckConstraint("paired_ms IS NULL OR used_ms IS NOT NULL", name="paired_once_used"),
    )
    op.create_index("ix_counter_devices_member_id", "counter_devices", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_counter_devices_member_id", "counter_devices")
    op.drop_table("counter_devices")
    op.drop_index("ix_sessions_key_id", "sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_constraint(op.f("ck_sessions_counter_key"), type_="check")
        batch.drop_constraint(op.f("ck_sessions_scope"), type_="check")
        batch.drop_column("key_id")
        batch.drop_column("scope")
