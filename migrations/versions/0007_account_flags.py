"""An account may go below zero exactly when its kind may: the database holds the chart's
line too. The node judges by the chart whatever a row says, and no row can be updated
(the `accounts_fixed` trigger); this refuses an account opened with flags that contradict
its kind, by a bug or by hand.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The kinds of ledger/chart.py RULES with may_go_negative (the chart is code; the schema
# repeats this line of it rather than import code that may change after this revision).
NEGATIVE_KINDS = "('issuance', 'external')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE accounts ADD CONSTRAINT ck_accounts_negative_by_kind "
            f"CHECK (may_go_negative = (kind IN {NEGATIVE_KINDS}))"
        )
        return
    # SQLite adds a CHECK only by rebuilding the table (and its triggers): a trigger instead.
    op.execute(f"""
        CREATE TRIGGER accounts_negative_by_kind BEFORE INSERT ON accounts
        WHEN NEW.may_go_negative IS NOT (NEW.kind IN {NEGATIVE_KINDS})
        BEGIN SELECT RAISE(ABORT, 'sou: an account may go negative only by its kind'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE accounts DROP CONSTRAINT ck_accounts_negative_by_kind")
    else:
        op.execute("DROP TRIGGER accounts_negative_by_kind")
