"""The ledger: accounts, keys, transfers and postings, the Merkle log, and the rules the
database itself enforces (append-only history, balanced transfers, no overdraft).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = ("core",)
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HISTORY = (
    "transfers",
    "postings",
    "key_events",
    "log_leaves",
    "log_nodes",
    "checkpoints",
    "ledger_meta",
)
# SQLite's INSERT OR REPLACE deletes a conflicting row without firing DELETE triggers:
# refuse any insert that collides with a unique key of a protected table.
UNIQUE_KEYS = {
    "transfers": (("id",), ("initiator", "client_id"), ("key_id", "nonce")),
    "postings": (("transfer_id", "account_id"),),
    "key_events": (("id",),),
    "log_leaves": (("idx",), ("transfer_id",), ("key_event_id",)),
    "log_nodes": (("level", "idx"),),
    "checkpoints": (("tree_size",),),
    "ledger_meta": (("name",),),
    "keys": (("key_id",), ("public_key",)),
    "accounts": (("id",), ("code",)),
}
BACKING = "'reserve', 'clearing', 'office_cash'"
OUTSTANDING = "'member', 'escrow', 'association', 'notes_circulation'"

# One pass over a transfer's postings: are they fewer than two, or not summing to zero on
# either ledger (a node has exactly two: EUR and its local unit), or do they reduce
# (euros in backing accounts) - (units outstanding)? Each must be false.
TRANSFER_FAULTS = f"""
    SELECT count(*) < 2
           OR coalesce(sum(CASE WHEN p.currency = 'EUR' THEN p.amount END), 0) <> 0
           OR coalesce(sum(CASE WHEN p.currency <> 'EUR' THEN p.amount END), 0) <> 0
             AS unbalanced,
           coalesce(sum(CASE WHEN a.kind IN ({BACKING}) THEN p.amount
                             WHEN a.kind IN ({OUTSTANDING}) THEN -p.amount
                             ELSE 0 END), 0) < 0 AS unbacked
    FROM postings p JOIN accounts a ON a.id = p.account_id WHERE p.transfer_id = {{id}}"""


def upgrade() -> None:
    create_tables()
    if op.get_bind().dialect.name == "postgresql":
        postgresql_rules()
    else:
        sqlite_rules()


def whole_cents(column: str) -> list[sa.CheckConstraint]:
    """SQLite stores whatever it is given: insist on integers (must 1). PostgreSQL's
    BIGINT already does."""
    if op.get_bind().dialect.name != "sqlite":
        return []
    return [sa.CheckConstraint(f"typeof({column}) = 'integer'", name=op.f(f"ck_{column}_cents"))]


def create_tables() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=96), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("may_go_negative", sa.Boolean(), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "may_go_negative OR balance >= 0", name=op.f("ck_accounts_no_overdraft")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_accounts_code")),
        sa.UniqueConstraint("id", "currency", name="uq_accounts_id_currency"),
        *whole_cents("balance"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=96), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("registered_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_keys")),
        sa.UniqueConstraint("public_key", name=op.f("uq_keys_public_key")),
    )
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_keys_owner"), ["owner"], unique=False)

    op.create_table(
        "ledger_meta",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ledger_meta")),
    )
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.CheckConstraint("level >= 1 AND idx >= 0", name=op.f("ck_log_nodes_position")),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_log_nodes")),
    )
    op.create_table(
        "key_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("event_json", sa.Text(), nullable=False),
        sa.Column("signer_key_id", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("action IN ('register', 'revoke')", name=op.f("ck_key_events_action")),
        sa.ForeignKeyConstraint(
            ["key_id"], ["keys.key_id"], name=op.f("fk_key_events_key_id_keys")
        ),
        sa.ForeignKeyConstraint(
            ["signer_key_id"], ["keys.key_id"], name=op.f("fk_key_events_signer_key_id_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_events")),
    )
    with op.batch_alter_table("key_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_key_events_key_id"), ["key_id"], unique=False)

    op.create_table(
        "transfers",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("initiator", sa.String(length=96), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("order_json", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("ref_id", Id, nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["keys.key_id"], name=op.f("fk_transfers_key_id_keys")),
        sa.ForeignKeyConstraint(
            ["ref_id"], ["transfers.id"], name=op.f("fk_transfers_ref_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("initiator", "client_id", name="uq_transfers_client_id"),
        sa.UniqueConstraint("key_id", "nonce", name="uq_transfers_nonce"),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfers_ref_id"), ["ref_id"], unique=False)
        batch_op.create_index(
            "uq_transfers_settles",
            ["ref_id"],
            unique=True,
            sqlite_where=sa.text("kind IN ('payout', 'correction')"),
            postgresql_where=sa.text("kind IN ('payout', 'correction')"),
        )

    op.create_table(
        "log_leaves",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("transfer_id", Id, nullable=True),
        sa.Column("key_event_id", Id, nullable=True),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.CheckConstraint(
            "(transfer_id IS NULL) <> (key_event_id IS NULL)", name=op.f("ck_log_leaves_one_entry")
        ),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_log_leaves_idx")),
        sa.ForeignKeyConstraint(
            ["key_event_id"], ["key_events.id"], name=op.f("fk_log_leaves_key_event_id_key_events")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name=op.f("fk_log_leaves_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_log_leaves")),
        sa.UniqueConstraint("key_event_id", name=op.f("uq_log_leaves_key_event_id")),
        sa.UniqueConstraint("transfer_id", name=op.f("uq_log_leaves_transfer_id")),
    )
    op.create_table(
        "log_queue",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("transfer_id", Id, nullable=True),
        sa.Column("key_event_id", Id, nullable=True),
        sa.CheckConstraint(
            "(transfer_id IS NULL) <> (key_event_id IS NULL)", name=op.f("ck_log_queue_one_entry")
        ),
        sa.ForeignKeyConstraint(
            ["key_event_id"], ["key_events.id"], name=op.f("fk_log_queue_key_event_id_key_events")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name=op.f("fk_log_queue_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_queue")),
        sa.UniqueConstraint("key_event_id", name=op.f("uq_log_queue_key_event_id")),
        sa.UniqueConstraint("transfer_id", name=op.f("uq_log_queue_transfer_id")),
    )
    op.create_table(
        "postings",
        sa.Column("transfer_id", Id, nullable=False),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_postings_nonzero")),
        *whole_cents("amount"),
        sa.ForeignKeyConstraint(
            ["account_id", "currency"],
            ["accounts.id", "accounts.currency"],
            name="fk_postings_account_currency",
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["transfers.id"],
            name="fk_postings_transfer",
            initially="DEFERRED",
            deferrable=True,
        ),
        sa.PrimaryKeyConstraint("transfer_id", "account_id", name=op.f("pk_postings")),
    )
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.create_index("ix_postings_account", ["account_id", "transfer_id"], unique=False)


def sqlite_rules() -> None:
    for table, keys in UNIQUE_KEYS.items():
        clash = " OR ".join("(" + " AND ".join(f"{c} = NEW.{c}" for c in key) + ")" for key in keys)
        op.execute(f"""
            CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table}
            WHEN EXISTS (SELECT 1 FROM {table} WHERE {clash})
            BEGIN SELECT RAISE(ABORT, 'sou: {table} rows are never replaced'); END""")
    for table in HISTORY:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
                BEGIN SELECT RAISE(ABORT, 'sou: {table} is append-only'); END""")
    op.execute("""
        CREATE TRIGGER accounts_fixed BEFORE UPDATE OF id, code, currency, kind, may_go_negative,
            created_ms ON accounts
        BEGIN SELECT RAISE(ABORT, 'sou: only an account balance may change'); END""")
    op.execute("""
        CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
        BEGIN SELECT RAISE(ABORT, 'sou: accounts are never deleted'); END""")
    op.execute("""
        CREATE TRIGGER keys_revoke_only BEFORE UPDATE ON keys
        WHEN OLD.revoked_ms IS NOT NULL OR NEW.revoked_ms IS NULL OR NEW.key_id <> OLD.key_id
          OR NEW.owner <> OLD.owner OR NEW.public_key <> OLD.public_key
          OR NEW.registered_ms <> OLD.registered_ms
        BEGIN SELECT RAISE(ABORT, 'sou: a key can only be revoked, once'); END""")
    op.execute("""
        CREATE TRIGGER keys_no_delete BEFORE DELETE ON keys
        BEGIN SELECT RAISE(ABORT, 'sou: keys are never deleted'); END""")
    # Postings are inserted before their transfer row (the foreign key is deferred); once
    # the transfer row exists its postings are closed, and the row is refused unless they
    # balance. SQLite has no deferred triggers; this ordering gives the same guarantee.
    op.execute("""
        CREATE TRIGGER postings_closed BEFORE INSERT ON postings
        WHEN EXISTS (SELECT 1 FROM transfers WHERE id = NEW.transfer_id)
        BEGIN SELECT RAISE(ABORT, 'sou: a posted transfer cannot get new postings'); END""")
    faults = TRANSFER_FAULTS.format(id="NEW.id")
    op.execute(f"""
        CREATE TRIGGER transfers_balanced BEFORE INSERT ON transfers
        WHEN (SELECT unbalanced FROM ({faults}))
        BEGIN SELECT RAISE(ABORT, 'sou: transfer postings do not sum to zero'); END""")
    op.execute(f"""
        CREATE TRIGGER transfers_backed BEFORE INSERT ON transfers
        WHEN (SELECT unbacked FROM ({faults}))
        BEGIN SELECT RAISE(ABORT, 'sou: transfer would leave units unbacked'); END""")


def postgresql_rules() -> None:
    # The log queue is a work list: rows come and go every fraction of a second. Vacuum it
    # after a few thousand removals rather than a fraction of its (tiny) size, so that
    # reading its head never wades through dead rows.
    op.execute(
        "ALTER TABLE log_queue SET (autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0)"
    )
    op.execute("""
        CREATE FUNCTION sou_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'sou: % is append-only (% refused)', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END $$""")
    for table in HISTORY:
        op.execute(f"""
            CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION sou_append_only()""")
        op.execute(f"""
            CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION sou_append_only()""")
    op.execute("""
        CREATE FUNCTION sou_accounts_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' OR (NEW.id, NEW.code, NEW.currency, NEW.kind,
                    NEW.may_go_negative, NEW.created_ms) IS DISTINCT FROM (OLD.id, OLD.code,
                    OLD.currency, OLD.kind, OLD.may_go_negative, OLD.created_ms) THEN
                RAISE EXCEPTION 'sou: only an account balance may change'
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$""")
    # Balance updates (every payment) do not name these columns, so they do not fire it.
    op.execute("""
        CREATE TRIGGER accounts_fixed
        BEFORE UPDATE OF id, code, currency, kind, may_go_negative, created_ms OR DELETE
        ON accounts FOR EACH ROW EXECUTE FUNCTION sou_accounts_fixed()""")
    op.execute("""
        CREATE FUNCTION sou_keys_revoke_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' OR OLD.revoked_ms IS NOT NULL OR NEW.revoked_ms IS NULL
               OR (NEW.key_id, NEW.owner, NEW.public_key, NEW.registered_ms)
                  IS DISTINCT FROM (OLD.key_id, OLD.owner, OLD.public_key, OLD.registered_ms)
            THEN
                RAISE EXCEPTION 'sou: a key can only be revoked, once'
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("""
        CREATE TRIGGER keys_revoke_only BEFORE UPDATE OR DELETE ON keys
        FOR EACH ROW EXECUTE FUNCTION sou_keys_revoke_only()""")
    # Once per INSERT statement (a whole batch), not once per posting.
    op.execute("""
        CREATE FUNCTION sou_postings_closed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM new_postings n JOIN transfers t ON t.id = n.transfer_id)
            THEN
                RAISE EXCEPTION 'sou: a posted transfer cannot get new postings'
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER postings_closed AFTER INSERT ON postings
        REFERENCING NEW TABLE AS new_postings
        FOR EACH STATEMENT EXECUTE FUNCTION sou_postings_closed()""")
    # Checked at COMMIT, once every posting of the transaction is in.
    op.execute(f"""
        CREATE FUNCTION sou_transfer_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            fault record;
        BEGIN
            {TRANSFER_FAULTS.format(id="NEW.id")}
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
        END $$""")
    op.execute("""
        CREATE CONSTRAINT TRIGGER transfers_balanced AFTER INSERT ON transfers
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sou_transfer_balanced()""")


def downgrade() -> None:
    bind = op.get_bind()
    for table in (
        "log_queue",
        "log_leaves",
        "log_nodes",
        "checkpoints",
        "postings",
        "transfers",
        "key_events",
        "keys",
        "accounts",
        "ledger_meta",
    ):
        op.drop_table(table)
    if bind.dialect.name == "postgresql":
        for function in (
            "sou_append_only",
            "sou_accounts_fixed",
            "sou_keys_revoke_only",
            "sou_postings_closed",
            "sou_transfer_balanced",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}() CASCADE")
