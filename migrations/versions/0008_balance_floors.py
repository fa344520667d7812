"""A batch judged on the balances the node last saw may hold on a floor instead of a value.

`sou_expect_balances` (0006) refused a batch whenever a balance it read had moved at all.
One account debited by two server processes at once (an exchange office, escrows
releasing) moves between any process's read and its write, so most of its batches were
refused and judged again under lock, three round trips instead of one. What a judgment
needs of a balance is less than its value: every debit it accepted fits as long as the
balance is at least what those debits took at their tightest (its floor). Only a balance
that refused an order must hold its value exactly (the refusal tells what was available).
Each entry of `seen` now carries either: `balance`, exactly, or `floor`, at least, or
neither (the account is only locked).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# SQLSTATE SOU01 tells the node to judge again (any other error is a refusal).
EXPECT_BALANCES = """
    CREATE OR REPLACE FUNCTION sou_expect_balances(seen json, signers json) RETURNS void
    LANGUAGE plpgsql SET enable_seqscan = off AS $$
    DECLARE
        moved bigint;
    BEGIN
        PERFORM 1 FROM accounts
        WHERE id IN (SELECT (s ->> 'id')::bigint FROM json_array_elements(seen) s)
        ORDER BY id FOR NO KEY UPDATE;
        SELECT a.id INTO moved
        FROM json_to_recordset(seen) AS s(id bigint, balance bigint, floor bigint)
        JOIN accounts a ON a.id = s.id
        WHERE (s.balance IS NOT NULL AND a.balance <> s.balance)
           OR (s.floor IS NOT NULL AND a.balance < s.floor)
        LIMIT 1;
        IF moved IS NOT NULL THEN
            RAISE EXCEPTION 'sou: the balance of account % moved since it was read', moved
                USING ERRCODE = 'SOU01';
        END IF;
        IF EXISTS (
            SELECT 1 FROM keys WHERE revoked_ms IS NOT NULL
            AND key_id IN (SELECT json_array_elements_text(signers))
        ) THEN
            RAISE EXCEPTION 'sou: a key that signed this batch was revoked since it was read'
                USING ERRCODE = 'SOU01';
        END IF;
    END $$"""

# As 0006 made it, for the downgrade.
EXACT_BALANCES = """
    CREATE OR REPLACE FUNCTION sou_expect_balances(seen json, signers json) RETURNS void
    LANGUAGE plpgsql SET enable_seqscan = off AS $$
    DECLARE
        moved bigint;
    BEGIN
        PERFORM 1 FROM accounts
        WHERE id IN (SELECT (s ->> 'id')::bigint FROM json_array_elements(seen) s)
        ORDER BY id FOR NO KEY UPDATE;
        SELECT a.id INTO moved
        FROM json_to_recordset(seen) AS s(id bigint, balance bigint)
        JOIN accounts a ON a.id = s.id
        WHERE s.balance IS NOT NULL AND a.balance <> s.balance
        LIMIT 1;
        IF moved IS NOT NULL THEN
            RAISE EXCEPTION 'sou: the balance of account % moved since it was read', moved
                USING ERRCODE = 'SOU01';
        END IF;
        IF EXISTS (
            SELECT 1 FROM keys WHERE revoked_ms IS NOT NULL
            AND key_id IN (SELECT json_array_elements_text(signers))
        ) THEN
            RAISE EXCEPTION 'sou: a key that signed this batch was revoked since it was read'
                USING ERRCODE = 'SOU01';
        END IF;
    END $$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(EXPECT_BALANCES)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(EXACT_BALANCES)
