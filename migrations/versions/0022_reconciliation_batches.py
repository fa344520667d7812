"""Reconciliation: one bank line matched to several ledger movements (a batch booking).

A bank may book a whole transfer file on one statement line ("remise globale"). Such a
line gets one match per movement, numbered by `reconciliation_matches.part` (0, 1, 2…);
a line's only movement is its part 0. The live-line unique index becomes
`(line_id, part)`: a line has one live match or one live batch, never two, and never a
plain match beside a batch (both have a part 0). The per-movement index is unchanged: a
movement is matched once.

Going back, the old schema cannot hold a batch: each live batch is undone (stamped, kept in
the history), its line and movements open again.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

LIVE = sa.text("undone_ms IS NULL")
UNDONE_BY = "migration 0022 downgrade"


def upgrade() -> None:
    op.drop_index("uq_reconciliation_matches_line", table_name="reconciliation_matches")
    # One statement both databases take, the table kept as it is (SQLite need not copy it).
    op.execute(
        "ALTER TABLE reconciliation_matches ADD COLUMN part INTEGER DEFAULT 0 NOT NULL "
        "CONSTRAINT ck_reconciliation_matches_part CHECK (part >= 0)"
    )
    _line_index("line_id", "part")


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE reconciliation_matches SET undone_by = :by, undone_ms = :at "
            "WHERE undone_ms IS NULL AND line_id IN (SELECT line_id FROM reconciliation_matches"
            " WHERE undone_ms IS NULL AND part > 0)"
        ).bindparams(by=UNDONE_BY, at=int(time.time() * 1000))
    )
    op.drop_index("uq_reconciliation_matches_line", table_name="reconciliation_matches")
    op.execute("ALTER TABLE reconciliation_matches DROP COLUMN part")  # and its check
    _line_index("line_id")


def _line_index(*columns: str) -> None:
    op.create_index(
        "uq_reconciliation_matches_line",
        "reconciliation_matches",
        list(columns),
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
