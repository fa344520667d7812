"""Members and their access (sessions, API tokens, device labels, failed logins), merchants,
card payments with the Stripe events seen, and reconversion requests.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROLES = "('resident', 'merchant', 'office', 'treasurer', 'admin')"


def cents(*columns: str) -> list[sa.CheckConstraint]:
    """On SQLite, money columns hold integers only (PostgreSQL's BIGINT already does)."""
    if op.get_bind().dialect.name != "sqlite":
        return []
    return [sa.CheckConstraint(f"typeof({c}) = 'integer'", name=f"{c}_cents") for c in columns]


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(120), nullable=False),
        sa.Column("email", sa.String(254), unique=True),
        sa.Column("password_hash", sa.Text),
        sa.Column("office", sa.String(48)),
        sa.Column("locale", sa.String(5), nullable=False, server_default="fr"),
        sa.Column("membership_until", sa.Date),
        sa.Column("frozen_reason", sa.Text),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.CheckConstraint(f"role IN {ROLES}", name="role"),
        sa.CheckConstraint("role <> 'office' OR office IS NOT NULL", name="office_operator"),
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_sessions_member_id", "sessions", ["member_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("label", sa.String(80), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger),
        sa.CheckConstraint("scope IN ('wallet', 'pos')", name="scope"),
    )
    op.create_index("ix_api_tokens_member_id", "api_tokens", ["member_id"])
    op.create_table(
        "devices",
        sa.Column("key_id", sa.String(32), sa.ForeignKey("keys.key_id"), primary_key=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("label", sa.String(80), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_devices_member_id", "devices", ["member_id"])
    op.create_table(
        "login_failures",
        sa.Column("subject", sa.String(300), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("window_start_ms", sa.BigInteger, nullable=False),
    )
    create_card_tables()
    create_merchant_tables()


def create_card_tables() -> None:
    op.create_table(
        "card_payments",
        sa.Column("payment_intent", sa.String(255), primary_key=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("topup_transfer_id", Id, sa.ForeignKey("transfers.id"), unique=True),
        sa.Column("reversed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("shortfall", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount > 0", name="amount"),
        sa.CheckConstraint(
            "status IN ('created', 'credited', 'refunded', 'disputed', 'dispute_lost', 'failed')",
            name="status",
        ),
        sa.CheckConstraint("reversed >= 0 AND held >= 0 AND shortfall >= 0", name="cents"),
        sa.CheckConstraint("reversed + held <= amount", name="within_amount"),
        *cents("amount", "reversed", "held", "shortfall"),
    )
    op.create_index("ix_card_payments_member_id", "card_payments", ["member_id"])
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(80), nullable=False),
        sa.Column("payment_intent", sa.String(255)),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
    )


def create_merchant_tables() -> None:
    op.create_table(
        "merchants",
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), primary_key=True),
        sa.Column("trade_name", sa.String(120), nullable=False),
        sa.Column("category", sa.String(60), nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("siret", sa.String(14)),
        sa.CheckConstraint("siret IS NULL OR length(siret) = 14", name="siret"),
    )
    op.create_table(
        "reconversions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("cause_fee", sa.BigInteger, nullable=False),
        sa.Column("redemption_id", Id, sa.ForeignKey("transfers.id"), nullable=False, unique=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("bank_ref", sa.String(128)),
        sa.Column("decided_by", sa.String(48), sa.ForeignKey("members.id")),
        sa.Column("decision_id", Id, sa.ForeignKey("transfers.id"), unique=True),
        sa.Column("reason", sa.Text),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("decided_ms", sa.BigInteger),
        sa.CheckConstraint(
            "amount > 0 AND fee >= 0 AND cause_fee >= 0 AND cause_fee <= fee", name="cents"
        ),
        sa.CheckConstraint("status IN ('pending', 'paid', 'rejected')", name="status"),
        sa.CheckConstraint(
            "(status = 'pending') = (decision_id IS NULL)", name="decided_with_transfer"
        ),
        sa.CheckConstraint("status <> 'paid' OR bank_ref IS NOT NULL", name="paid_with_reference"),
        *cents("amount", "fee", "cause_fee"),
    )
    op.create_index("ix_reconversions_member_id", "reconversions", ["member_id"])
    op.create_index("ix_reconversions_status", "reconversions", ["status"])


def downgrade() -> None:
    for table in (
        "reconversions",
        "merchants",
        "stripe_events",
        "card_payments",
        "login_failures",
        "devices",
        "api_tokens",
        "sessions",
        "members",
    ):
        op.drop_table(table)
