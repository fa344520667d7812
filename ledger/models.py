"""The ledger's tables. The schema itself is made only by the Alembic migrations.

History tables (transfers, postings, key events, the log) are append-only: triggers made by
the migration refuse UPDATE and DELETE. `accounts.balance` is the only running figure; it is
checked against replayed postings by the audit, and kept >= 0 by a CHECK where required.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# SQLite makes an auto-numbered rowid only for a column typed exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

meta = Table(
    "ledger_meta",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Text, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(96), nullable=False, unique=True),
    Column("currency", String(8), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("may_go_negative", Boolean, nullable=False),
    Column("balance", BigInteger, nullable=False, server_default=text("0")),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("id", "currency", name="uq_accounts_id_currency"),
    CheckConstraint("may_go_negative OR balance >= 0", name="no_overdraft"),
)

keys = Table(
    "keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("owner", String(96), nullable=False, index=True),
    Column("public_key", LargeBinary(32), nullable=False, unique=True),
    Column("registered_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
)

key_events = Table(
    "key_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key_id", String(32), ForeignKey("keys.key_id"), nullable=False, index=True),
    Column("action", String(16), nullable=False),
    Column("event_json", Text, nullable=False),
    Column("signer_key_id", String(32), ForeignKey("keys.key_id"), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    CheckConstraint("action IN ('register', 'revoke')", name="action"),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(24), nullable=False),
    Column("initiator", String(96), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("key_id", String(32), ForeignKey("keys.key_id"), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("order_json", Text, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("ref_id", Id, ForeignKey("transfers.id"), index=True),
    Column("created_ms", BigInteger, nullable=False),
    # The one-time token the transfer used up (an invoice paid, a note deposited): its
    # operation derives it from the order; two transfers never share one.
    Column("once_key", String(200)),
    UniqueConstraint("initiator", "client_id", name="uq_transfers_client_id"),
    UniqueConstraint("key_id", "nonce", name="uq_transfers_nonce"),
)
Index("uq_transfers_once_key", transfers.c.once_key, unique=True)
# A redemption is paid out or reversed once; any transfer is corrected at most once.
Index(
    "uq_transfers_settles",
    transfers.c.ref_id,
    unique=True,
    sqlite_where=text("kind IN ('payout', 'correction')"),
    postgresql_where=text("kind IN ('payout', 'correction')"),
)

postings = Table(
    "postings",
    metadata,
    # Postings are written before their transfer row, whose insert checks they sum to zero.
    Column("transfer_id", Id, nullable=False, primary_key=True),
    Column("account_id", Id, nullable=False, primary_key=True),
    Column("currency", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    ForeignKeyConstraint(
        ["transfer_id"],
        ["transfers.id"],
        name="fk_postings_transfer",
        deferrable=True,
        initially="DEFERRED",
    ),
    ForeignKeyConstraint(
        ["account_id", "currency"],
        ["accounts.id", "accounts.currency"],
        name="fk_postings_account_currency",
    ),
    CheckConstraint("amount <> 0", name="nonzero"),
    Index("ix_postings_account", "account_id", "transfer_id"),
)

# Committed transfers and key events not yet in the Merkle log (the sealer's work list).
# The log's tables name transfers and key events without foreign keys on PostgreSQL
# (migration 0006: a lookup per payment): the sealer refuses a queue entry naming nothing,
# the audit a leaf naming nothing. SQLite keeps the keys made by 0001.
log_queue = Table(
    "log_queue",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transfer_id", Id, unique=True),
    Column("key_event_id", Id, unique=True),
    CheckConstraint("(transfer_id IS NULL) <> (key_event_id IS NULL)", name="one_entry"),
)

log_leaves = Table(
    "log_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("transfer_id", Id, unique=True),
    Column("key_event_id", Id, unique=True),
    Column("hash", LargeBinary(32), nullable=False),
    CheckConstraint("(transfer_id IS NULL) <> (key_event_id IS NULL)", name="one_entry"),
    CheckConstraint("idx >= 0", name="idx"),
)

# Perfect subtrees of height >= 1 (leaves are level 0): enough for any proof in log time.
log_nodes = Table(
    "log_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    CheckConstraint("level >= 1 AND idx >= 0", name="position"),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

# The fee rules in force over time, each signed by the node key and naming the one it
# follows (ledger/fee_rules.py): the audit checks every fee charged against the rule of its
# day. Append-only.
fee_rules = Table(
    "fee_rules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("previous", BigInteger, unique=True),  # None for the first: one rule follows each
    Column("effective_ms", BigInteger, nullable=False),
    Column("rule_json", Text, nullable=False),  # RFC 8785 canonical JSON, what is signed
    Column("signature", LargeBinary(64), nullable=False),
)

HISTORY_TABLES = (
    "transfers",
    "postings",
    "key_events",
    "log_leaves",
    "log_nodes",
    "checkpoints",
    "fee_rules",
)
