"""The treasurer's reconciliation: imported statement lines and their matches.

- `reconciliation_statements`: each file (or Stripe read) imported, by whom, when.
- `reconciliation_lines`: the lines of bank statements and of Stripe's balance, each once
  per account (`uq_reconciliation_lines_key`: a statement imported twice adds nothing).
- `reconciliation_matches`: a line paired with a transfer's euros on that account; undone
  matches are kept (stamped), live ones unique per line and per movement.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE = sa.text("undone_ms IS NULL")


def upgrade() -> None:
    op.create_table(
        "reconciliation_statements",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("lines_read", sa.Integer, nullable=False),
        sa.Column("lines_added", sa.Integer, nullable=False),
        sa.Column("imported_by", sa.String(48)),
        sa.Column("imported_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_statements"),
    )
    op.create_table(
        "reconciliation_lines",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("statement_id", Id, nullable=False),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("line_key", sa.String(160), nullable=False),
        sa.Column("occurrence", sa.Integer, nullable=False),
        sa.Column("booked", sa.String(10), nullable=False),
        sa.Column("value_date", sa.String(10)),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("reference", sa.String(140)),
        sa.Column("end_to_end", sa.String(140)),
        sa.Column("extra_ref", sa.String(140)),
        sa.Column("label", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_lines"),
        sa.ForeignKeyConstraint(
            ["statement_id"],
            ["reconciliation_statements.id"],
            name="fk_reconciliation_lines_statement_id_reconciliation_statements",
        ),
        sa.UniqueConstraint("account", "line_key", name="uq_reconciliation_lines_key"),
        sa.CheckConstraint("amount <> 0", name="ck_reconciliation_lines_nonzero"),
        sa.CheckConstraint("occurrence >= 1", name="ck_reconciliation_lines_occurrence"),
    )
    op.create_table(
        "reconciliation_matches",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("line_id", Id, nullable=False),
        sa.Column("transfer_id", Id, nullable=False),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("how", sa.String(16), nullable=False),
        sa.Column("note", sa.String(280)),
        sa.Column("matched_by", sa.String(48)),
        sa.Column("matched_ms", sa.BigInteger, nullable=False),
        sa.Column("undone_by", sa.String(48)),
        sa.Column("undone_ms", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_matches"),
        sa.ForeignKeyConstraint(
            ["line_id"],
            ["reconciliation_lines.id"],
            name="fk_reconciliation_matches_line_id_reconciliation_lines",
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["transfers.id"],
            name="fk_reconciliation_matches_transfer_id_transfers",
        ),
        sa.CheckConstraint(
            "how IN ('reference', 'amount', 'hand')", name="ck_reconciliation_matches_how"
        ),
        sa.CheckConstraint(
            "how <> 'hand' OR note IS NOT NULL", name="ck_reconciliation_matches_hand_has_note"
        ),
    )
    op.create_index("ix_reconciliation_matches_line_id", "reconciliation_matches", ["line_id"])
    op.create_index(
        "uq_reconciliation_matches_line",
        "reconciliation_matches",
        ["line_id"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index(
        "uq_reconciliation_matches_movement",
        "reconciliation_matches",
        ["transfer_id", "account"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )


def downgrade() -> None:
    op.drop_table("reconciliation_matches")
    op.drop_table("reconciliation_lines")
    op.drop_table("reconciliation_statements")
