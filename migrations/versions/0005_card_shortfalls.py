"""Card payments: each Stripe dispute by its id, since when a payment has been short, and
the treasurer's settlements of shortfalls (units taken back later, written off, unfrozen).

A dispute open when this runs had no row of its own: it gets one named `legacy:<payment
intent>`, holding what the payment holds, which its closing event then closes.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INTENT_FK = "card_payments.payment_intent"


def cents(*columns: str) -> list[sa.CheckConstraint]:
    """On SQLite, money columns hold integers only (PostgreSQL's BIGINT already does)."""
    if op.get_bind().dialect.name != "sqlite":
        return []
    return [sa.CheckConstraint(f"typeof({c}) = 'integer'", name=f"{c}_cents") for c in columns]


def upgrade() -> None:
    op.create_table(
        "card_disputes",
        sa.Column("dispute_id", sa.String(255), primary_key=True),
        sa.Column("payment_intent", sa.String(255), sa.ForeignKey(INTENT_FK), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("owed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("opened_ms", sa.BigInteger),
        sa.Column("closed_ms", sa.BigInteger),
        sa.CheckConstraint("status IN ('open', 'won', 'lost')", name="status"),
        sa.CheckConstraint("amount >= 0 AND held >= 0 AND owed >= 0", name="cents"),
        sa.CheckConstraint("(status = 'open') = (closed_ms IS NULL)", name="closed_when"),
        *cents("amount", "held", "owed"),
    )
    op.create_index("ix_card_disputes_payment_intent", "card_disputes", ["payment_intent"])
    op.create_table(
        "card_shortfalls",
        sa.Column("payment_intent", sa.String(255), sa.ForeignKey(INTENT_FK), primary_key=True),
        sa.Column("since_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "card_settlements",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(48), nullable=False, unique=True),
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("payment_intent", sa.String(255), sa.ForeignKey(INTENT_FK)),
        sa.Column("amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reason", sa.Text),
        sa.Column("treasurer_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("done_ms", sa.BigInteger),
        sa.Column("reversal_id", Id, sa.ForeignKey("transfers.id")),
        sa.Column("topup_id", Id, sa.ForeignKey("transfers.id")),
        sa.CheckConstraint("action IN ('taken_back', 'written_off', 'unfrozen')", name="action"),
        sa.CheckConstraint("amount >= 0", name="cents"),
        sa.CheckConstraint("action = 'taken_back' OR reason IS NOT NULL", name="reason_given"),
        sa.CheckConstraint("(action = 'unfrozen') = (payment_intent IS NULL)", name="what_settled"),
        *cents("amount"),
    )
    op.create_index("ix_card_settlements_member_id", "card_settlements", ["member_id"])
    # What was already short, and the disputes already open, as they stand.
    op.execute(
        "INSERT INTO card_shortfalls (payment_intent, since_ms) "
        "SELECT payment_intent, updated_ms FROM card_payments WHERE shortfall > 0"
    )
    op.execute(
        "INSERT INTO card_disputes (dispute_id, payment_intent, amount, held, owed, status, "
        "opened_ms) SELECT 'legacy:' || payment_intent, payment_intent, held + shortfall, "
        "held, shortfall, 'open', updated_ms FROM card_payments WHERE status = 'disputed'"
    )


def downgrade() -> None:
    op.drop_index("ix_card_settlements_member_id", "card_settlements")
    op.drop_table("card_settlements")
    op.drop_table("card_shortfalls")
    op.drop_index("ix_card_disputes_payment_intent", "card_disputes")
    op.drop_table("card_disputes")
