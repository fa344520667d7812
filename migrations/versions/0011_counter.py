"""The counter: one-time tokens of transfers, invoices of points of sale, and notices.

- `transfers.once_key`: the one-time token a transfer used up (an invoice paid, a note
  deposited), unique: the database holds the line that an invoice is paid at most once,
  whatever process or retry posts a second payment of it.
- `pos_invoices`: what a point of sale asked to be paid. Its state is read from the ledger
  (a payment using the invoice's token), never stored beside it.
- `pos_authorisations`: what a customer's phone shows a shop (a signed authorisation to
  collect up to a cap), found by its short code; used once, as the ledger says.
- `pos_certificates`: the offline certificates the node signed (a device key may spend up to
  `cap` of its member's offline allowance until `expires_ms`): the allowance is not given
  back while one is live.
- `notices`: on SQLite, how one web process wakes another's waiting pages (PostgreSQL uses
  NOTIFY; the table stays empty there).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("transfers", recreate="never") as batch:
        batch.add_column(sa.Column("once_key", sa.String(200)))
    op.create_index("uq_transfers_once_key", "transfers", ["once_key"], unique=True)
    op.create_table(
        "pos_invoices",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("merchant_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("label", sa.String(80)),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("cancelled_ms", sa.BigInteger),
        sa.CheckConstraint("amount > 0", name="amount"),
        sa.CheckConstraint("expires_ms > created_ms", name="expiry"),
    )
    op.create_index("ix_pos_invoices_merchant", "pos_invoices", ["merchant_id", "created_ms"])
    op.create_table(
        "pos_authorisations",
        sa.Column("code", sa.String(12), primary_key=True),
        sa.Column("payer_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("auth_id", sa.String(64), nullable=False),
        sa.Column("auth", sa.Text, nullable=False),
        sa.Column("auth_sig", sa.String(100), nullable=False),
        sa.Column("cap", sa.BigInteger, nullable=False),
        sa.Column("shop_id", sa.String(48), sa.ForeignKey("members.id")),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("payer_id", "auth_id", name="uq_pos_authorisations_payer_id"),
        sa.CheckConstraint("cap > 0", name="cap"),
    )
    op.create_table(
        "pos_certificates",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("member_id", sa.String(48), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("cap", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.CheckConstraint("cap > 0", name="cap"),
    )
    op.create_index("ix_pos_certificates_member", "pos_certificates", ["member_id", "expires_ms"])
    op.create_table(
        "notices",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("message", sa.String(200), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notices")
    op.drop_table("pos_authorisations")
    op.drop_index("ix_pos_certificates_member", "pos_certificates")
    op.drop_table("pos_certificates")
    op.drop_index("ix_pos_invoices_merchant", "pos_invoices")
    op.drop_table("pos_invoices")
    op.drop_index("uq_transfers_once_key", "transfers")
    with op.batch_alter_table("transfers", recreate="never") as batch:
        batch.drop_column("once_key")
