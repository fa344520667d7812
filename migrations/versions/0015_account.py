"""One's access: sessions that end when unused, the list of them, password-reset links.

- `sessions.last_seen_ms`: when the session was last used (written at most every few
  minutes), so that one unused for `session_idle_minutes` ends; `sessions.user_agent`,
  `sessions.address`: the browser and address it was used from, for the member's list.
- `password_resets`: one-time links setting a new password (by email, or made at an
  exchange office), only the token's hash kept; used once by a conditional UPDATE.
  What limits asking for links and guessing one's current password is counted in
  `login_failures` (0014), with the login limits.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_seen_ms", sa.BigInteger))
        batch.add_column(sa.Column("user_agent", sa.String(200)))
        batch.add_column(sa.Column("address", sa.String(64)))
    op.execute("UPDATE sessions SET last_seen_ms = created_ms")
    with op.batch_alter_table("sessions") as batch:
        batch.alter_column("last_seen_ms", existing_type=sa.BigInteger, nullable=False)
    op.create_table(
        "password_resets",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("made_by", sa.String(48), sa.ForeignKey("members.id")),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("used_ms", sa.BigInteger),
        sa.CheckConstraint("expires_ms > created_ms", name="expires_after_made"),
    )
    op.create_index("ix_password_resets_member_id", "password_resets", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_password_resets_member_id", "password_resets")
    op.drop_table("password_resets")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("address")
        batch.drop_column("user_agent")
        batch.drop_column("last_seen_ms")
