"""The reconversion fee rules in force over time, signed by the node key (ledger/fee_rules.py),
append-only like the rest of the ledger's history.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fee_rules",
        sa.Column("id", Id, primary_key=True, autoincrement=False),
        sa.Column("previous", sa.BigInteger(), unique=True),
        sa.Column("effective_ms", sa.BigInteger(), nullable=False),
        sa.Column("rule_json", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("""
            CREATE TRIGGER fee_rules_no_replace BEFORE INSERT ON fee_rules
            WHEN EXISTS (SELECT 1 FROM fee_rules WHERE id = NEW.id OR previous = NEW.previous)
            BEGIN SELECT RAISE(ABORT, 'sou: fee_rules rows are never replaced'); END""")
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER fee_rules_no_{action.lower()} BEFORE {action} ON fee_rules
                BEGIN SELECT RAISE(ABORT, 'sou: fee_rules is append-only'); END""")
        return
    op.execute("""
        CREATE TRIGGER fee_rules_append_only BEFORE UPDATE OR DELETE ON fee_rules
        FOR EACH ROW EXECUTE FUNCTION sou_append_only()""")
    op.execute("""
        CREATE TRIGGER fee_rules_no_truncate BEFORE TRUNCATE ON fee_rules
        FOR EACH STATEMENT EXECUTE FUNCTION sou_append_only()""")


def downgrade() -> None:
    op.drop_table("fee_rules")
