"""The AMAP: producers, products, places, contracts, distributions, subscriptions, orders,
and the escrow payments with what each released or refunded.

Revision ID: amap_0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "amap_0001"
down_revision = None
branch_labels = ("amap",)
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Cents = sa.BigInteger
Who = sa.String(64)


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "amap_producers",
        sa.Column("member", Who, primary_key=True),
        sa.Column("named_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "amap_products",
        _id(),
        sa.Column("producer", Who, nullable=False, index=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("unit", sa.String(20), nullable=False),
        sa.Column("price", Cents, nullable=False),
        sa.CheckConstraint("price > 0", name="ck_amap_products_price"),
    )
    op.create_table(
        "amap_places",
        _id(),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
    )
    op.create_table(
        "amap_contracts",
        _id(),
        sa.Column("producer", Who, nullable=False, index=True),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("nature", sa.String(20), nullable=False),
        sa.Column("season", sa.String(40), nullable=False),
        sa.Column("jokers", sa.Integer, nullable=False),
        sa.Column("joker_rule", sa.String(10), nullable=False),
        sa.Column("leave_rule", sa.String(10), nullable=False),
        sa.Column("notice", sa.Integer, nullable=False),
        sa.Column("instalments", sa.Integer, nullable=False),
        sa.CheckConstraint(
            "nature IN ('subscription', 'free_choice', 'prepaid')", name="ck_amap_contracts_nature"
        ),
        sa.CheckConstraint("joker_rule IN ('carry', 'refund')", name="ck_amap_contracts_joker"),
        sa.CheckConstraint("leave_rule IN ('all', 'notice')", name="ck_amap_contracts_leave"),
        sa.CheckConstraint(
            "jokers >= 0 AND notice >= 0 AND instalments >= 1", name="ck_amap_contracts_counts"
        ),
    )
    op.create_table(
        "amap_contract_lines",
        sa.Column("contract", sa.BigInteger, primary_key=True),
        sa.Column("product", sa.BigInteger, primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_amap_contract_lines_quantity"),
    )
    op.create_table(
        "amap_coordinators",
        sa.Column("contract", sa.BigInteger, primary_key=True),
        sa.Column("member", Who, primary_key=True),
    )
    op.create_table(
        "amap_distributions",
        _id(),
        sa.Column("contract", sa.BigInteger, nullable=False, index=True),
        sa.Column("place", sa.BigInteger, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("cutoff_ms", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.CheckConstraint(
            "state IN ('planned', 'delivered', 'cancelled')", name="ck_amap_distributions_state"
        ),
    )
    op.create_table(
        "amap_stock",
        sa.Column("distribution", sa.BigInteger, primary_key=True),
        sa.Column("product", sa.BigInteger, primary_key=True),
        sa.Column("remaining", sa.Integer, nullable=False),
        # never oversold: the database refuses a negative remainder whatever the code does
        sa.CheckConstraint("remaining >= 0", name="ck_amap_stock_remaining"),
    )
    op.create_table(
        "amap_subscriptions",
        _id(),
        sa.Column("contract", sa.BigInteger, nullable=False, index=True),
        sa.Column("member", Who, nullable=False, index=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("total", Cents, nullable=False),
        sa.Column("credit", Cents, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("contract", "member", name="uq_amap_subscriptions_member"),
        sa.CheckConstraint("credit >= 0 AND total >= 0", name="ck_amap_subscriptions_credit"),
        sa.CheckConstraint("state IN ('active', 'left')", name="ck_amap_subscriptions_state"),
    )
    op.create_table(
        "amap_lines",
        sa.Column("subscription", sa.BigInteger, primary_key=True),
        sa.Column("distribution", sa.BigInteger, primary_key=True),
        sa.Column("product", sa.BigInteger, primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", Cents, nullable=False),
        sa.CheckConstraint("quantity > 0 AND unit_price > 0", name="ck_amap_lines_quantity"),
    )
    op.create_table(
        "amap_jokers",
        sa.Column("subscription", sa.BigInteger, primary_key=True),
        sa.Column("distribution", sa.BigInteger, primary_key=True),
    )
    op.create_table(
        "amap_payments",
        sa.Column("transfer_id", sa.BigInteger, primary_key=True),
        sa.Column("subscription", sa.BigInteger, nullable=False, index=True),
        sa.Column("amount", Cents, nullable=False),
        sa.Column("unspent", Cents, nullable=False),
        sa.Column("order_id", sa.String(64)),
        sa.CheckConstraint("unspent >= 0 AND unspent <= amount", name="ck_amap_payments_left"),
    )
    op.create_table(
        "amap_moves",
        sa.Column("client_id", sa.String(80), primary_key=True),
        sa.Column("subscription", sa.BigInteger, nullable=False, index=True),
        sa.Column("payment", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("to_account", sa.String(80), nullable=False),
        sa.Column("amount", Cents, nullable=False),
        sa.Column("transfer_id", sa.BigInteger),
        sa.CheckConstraint("amount > 0", name="ck_amap_moves_amount"),
    )
    op.create_table(
        "amap_holds",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("subscription", sa.BigInteger, nullable=False),
        sa.Column("distribution", sa.BigInteger, nullable=False),
        sa.Column("lines_before", sa.Text, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "amap_settlements",
        sa.Column("distribution", sa.BigInteger, primary_key=True),
        sa.Column("subscription", sa.BigInteger, primary_key=True),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("amount", Cents, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "amap_settlements",
        "amap_moves",
        "amap_holds",
        "amap_payments",
        "amap_jokers",
        "amap_lines",
        "amap_subscriptions",
        "amap_stock",
        "amap_distributions",
        "amap_coordinators",
        "amap_contract_lines",
        "amap_contracts",
        "amap_places",
        "amap_products",
        "amap_producers",
    ):
        op.drop_table(name)
