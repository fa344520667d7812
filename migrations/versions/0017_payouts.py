"""Payouts to merchants: their bank details and the treasurer's SEPA transfer batches.

- `bank_details`: one row per version of a member's bank account (IBAN, BIC, holder), each
  with the statement the member's device key signed; never updated nor deleted (triggers
  refuse it, as for the ledger's history tables). A version
  number unique per member keeps the history a line; a nonce unique over all refuses replays.
- `payout_batches`: one SEPA credit-transfer file (pain.001.001.03) of pending
  reconversions, kept as written; unpaid, then paid (with the bank's reference) or cancelled.
- `payout_items`: the reconversions of a batch; a partial unique index keeps a reconversion
  in at most one batch that is not cancelled.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bank_details",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("iban", sa.String(34), nullable=False),
        sa.Column("bic", sa.String(11), nullable=False),
        sa.Column("holder", sa.String(70), nullable=False),
        sa.Column("key_id", sa.String(48), nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("signature", sa.String(100), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False, unique=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("member_id", "version", name="uq_bank_details_version"),
        sa.CheckConstraint("version >= 1", name="bank_details_version"),
    )
    op.create_table(
        "payout_batches",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("message_id", sa.String(35), nullable=False, unique=True),
        sa.Column("sepa_xml", sa.Text, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("bank_ref", sa.String(128)),
        sa.Column("decided_by", sa.String(48), sa.ForeignKey("members.id")),
        sa.Column("decided_ms", sa.BigInteger),
        sa.CheckConstraint("status IN ('unpaid', 'paid', 'cancelled')", name="payout_batch_status"),
        sa.CheckConstraint(
            "status <> 'paid' OR bank_ref IS NOT NULL", name="payout_batch_paid_ref"
        ),
        sa.CheckConstraint("total > 0 AND count > 0", name="payout_batch_sums"),
    )
    op.create_table(
        "payout_items",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("batch_id", Id, sa.ForeignKey("payout_batches.id"), nullable=False),
        sa.Column("reconversion_id", Id, sa.ForeignKey("reconversions.id"), nullable=False),
        sa.Column("bank_details_id", Id, sa.ForeignKey("bank_details.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("released_ms", sa.BigInteger),
        sa.CheckConstraint("amount > 0", name="payout_item_amount"),
    )
    op.create_index("ix_payout_items_batch_id", "payout_items", ["batch_id"])
    op.create_index(
        "uq_payout_items_live",
        "payout_items",
        ["reconversion_id"],
        unique=True,
        sqlite_where=sa.text("released_ms IS NULL"),
        postgresql_where=sa.text("released_ms IS NULL"),
    )
    _append_only("bank_details")


def _append_only(table: str) -> None:
    """UPDATE and DELETE refused by the database itself: a bug cannot rewrite the history."""
    if op.get_bind().dialect.name == "postgresql":
        # sou_append_only() is the ledger's own (0001).
        op.execute(f"""
            CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION sou_append_only()""")
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(f"""
            CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
            BEGIN SELECT RAISE(ABORT, 'sou: {table} is append-only'); END""")


def downgrade() -> None:
    op.drop_index("uq_payout_items_live", table_name="payout_items")
    op.drop_index("ix_payout_items_batch_id", table_name="payout_items")
    op.drop_table("payout_items")
    op.drop_table("payout_batches")
    op.drop_table("bank_details")
