"""A cheaper posting path on PostgreSQL, with the same rules: the checks made for every
transfer look rows up by key whatever the tables' size, the log's work tables lose their
foreign keys, and a batch can be judged on balances it checks when it writes.

- `postings_closed` (once per batch of postings) joined the whole `transfers` table when
  the planner judged it small: each batch read every transfer ever posted. It now looks
  each new posting's transfer up by its primary key.
- The deferred zero-sum trigger (once per transfer, at commit) read `accounts` by a
  sequential scan when the planner judged it small; balances change with every payment,
  so between two vacuums that table holds many dead row versions, all read for each
  transfer. It now looks each posting's account up by its primary key. Same checks,
  same messages.
- `log_queue` and `log_leaves` no longer carry foreign keys to `transfers` and
  `key_events`: one key lookup per transfer when it is queued and another when it is
  sealed, on the payment path. Both tables are written only by the ledger, each row in the
  same transaction as what it names (history is never deleted), and what the keys guarded
  is checked otherwise: the audit reports a leaf whose transfer or key event is missing,
  and the sealer refuses to seal a queue entry naming nothing.
- `sou_expect_balances`: a batch of payments judged on the balances the node last saw
  (instead of reading them under lock first, one round trip more) starts its write with
  this call. It locks the accounts in id order, as every writer does, and refuses, before
  anything is written, if a balance the judgment read differs or a signer's key was
  revoked since; the node then judges the batch again on locked rows.

SQLite keeps its foreign keys: there they are in-process lookups, and dropping one means
rebuilding the table (and its triggers).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LOG_KEYS = {  # constraint name: (table, column, referred table)
    "fk_log_queue_transfer_id_transfers": ("log_queue", "transfer_id", "transfers"),
    "fk_log_queue_key_event_id_key_events": ("log_queue", "key_event_id", "key_events"),
    "fk_log_leaves_transfer_id_transfers": ("log_leaves", "transfer_id", "transfers"),
    "fk_log_leaves_key_event_id_key_events": ("log_leaves", "key_event_id", "key_events"),
}
# As in 0001: the account kinds that hold euros backing the units, and those that hold
# units in circulation.
BACKING = "'reserve', 'clearing', 'office_cash'"
OUTSTANDING = "'member', 'escrow', 'association', 'notes_circulation'"

# A LATERAL subquery with LIMIT 1 is run once per outer row, by key: the planner cannot
# turn it into a join that reads the whole inner table.
POSTINGS_CLOSED = """
    CREATE OR REPLACE FUNCTION sou_postings_closed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (
            SELECT 1 FROM new_postings n
            CROSS JOIN LATERAL (SELECT 1 FROM transfers t WHERE t.id = n.transfer_id LIMIT 1) t
        ) THEN
            RAISE EXCEPTION 'sou: a posted transfer cannot get new postings'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NULL;
    END $$"""

# enable_seqscan = off: the plan is made once per connection, maybe while `accounts` is
# tiny, and kept while dead row versions pile up; only a lookup by key stays cheap.
TRANSFER_BALANCED = f"""
    CREATE OR REPLACE FUNCTION sou_transfer_balanced() RETURNS trigger LANGUAGE plpgsql
    SET enable_seqscan = off AS $$
    DECLARE
        fault record;
    BEGIN
        SELECT count(*) < 2
               OR coalesce(sum(CASE WHEN p.currency = 'EUR' THEN p.amount END), 0) <> 0
               OR coalesce(sum(CASE WHEN p.currency <> 'EUR' THEN p.amount END), 0) <> 0
                 AS unbalanced,
               coalesce(sum(CASE WHEN a.kind IN ({BACKING}) THEN p.amount
                                 WHEN a.kind IN ({OUTSTANDING}) THEN -p.amount
                                 ELSE 0 END), 0) < 0 AS unbacked
        FROM postings p
        CROSS JOIN LATERAL (SELECT kind FROM accounts WHERE id = p.account_id LIMIT 1) a
        WHERE p.transfer_id = NEW.id
        INTO fault;
        IF fault.unbalanced THEN
            RAISE EXCEPTION 'sou: transfer % postings do not sum to zero', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
        IF fault.unbacked THEN
            RAISE EXCEPTION 'sou: transfer % would leave units unbacked', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$"""

# SQLSTATE SOU01 tells the node to judge again (any other error is a refusal).
EXPECT_BALANCES = """
    CREATE FUNCTION sou_expect_balances(seen json, signers json) RETURNS void
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

# The functions as 0001 made them, for the downgrade.
OLD_POSTINGS_CLOSED = """
    CREATE OR REPLACE FUNCTION sou_postings_closed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM new_postings n JOIN transfers t ON t.id = n.transfer_id)
        THEN
            RAISE EXCEPTION 'sou: a posted transfer cannot get new postings'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NULL;
    END $$"""
OLD_TRANSFER_BALANCED = f"""
    CREATE OR REPLACE FUNCTION sou_transfer_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        fault record;
    BEGIN
        SELECT count(*) < 2
               OR coalesce(sum(CASE WHEN p.currency = 'EUR' THEN p.amount END), 0) <> 0
               OR coalesce(sum(CASE WHEN p.currency <> 'EUR' THEN p.amount END), 0) <> 0
                 AS unbalanced,
               coalesce(sum(CASE WHEN a.kind IN ({BACKING}) THEN p.amount
                                 WHEN a.kind IN ({OUTSTANDING}) THEN -p.amount
                                 ELSE 0 END), 0) < 0 AS unbacked
        FROM postings p JOIN accounts a ON a.id = p.account_id WHERE p.transfer_id = NEW.id
        INTO fault;
        IF fault.unbalanced THEN
            RAISE EXCEPTION 'sou: transfer % postings do not sum to zero', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
        IF fault.unbacked THEN
            RAISE EXCEPTION 'sou: transfer % would leave units unbacked', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (table, _, _) in LOG_KEYS.items():
        op.drop_constraint(name, table, type_="foreignkey")
    op.execute(POSTINGS_CLOSED)
    op.execute(TRANSFER_BALANCED)
    op.execute(EXPECT_BALANCES)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION sou_expect_balances(json, json)")
    op.execute(OLD_POSTINGS_CLOSED)
    op.execute(OLD_TRANSFER_BALANCED)  # without the SET clause: CREATE OR REPLACE drops it
    for name, (table, column, referred) in LOG_KEYS.items():
        op.create_foreign_key(name, table, referred, [column], ["id"])
