"""The reconciliation's tables (made by migration 0018, a line's batch by 0022).

A statement line is stored once per bank account: `(account, line_key)` is unique, so a
statement imported twice adds nothing. The key is the bank's own reference (AcctSvcrRef, a
Stripe balance transaction id) or, when the bank gives none, a hash of the line's fields;
either way followed by `#n`, the line's occurrence in its file, so that a line printed
twice in one statement is kept twice (and the second shown as a duplicate).

A match pairs one line with one ledger movement (a transfer's euros on that account). A bank
may book several movements on one line (a whole transfer file, "remise globale", whatever
the file asked): the line then has one match per movement, numbered by `part` (0, 1, 2…),
all made and undone together. A line's only movement is its part 0, so a line has one live
match or one live batch, never both (unique `(line_id, part)` among live matches).

Undoing a match stamps it `undone_ms` (and the rest of its line's batch with it): the
history stays, and the automatic matching does not make an undone pair again. Only live
matches are unique, per line's part and per movement: a movement is matched once.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from ledger.models import Id, metadata

statements = Table(
    "reconciliation_statements",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "account", String(32), nullable=False
    ),  # reserve:digital, reserve:paper, clearing:stripe
    Column("format", String(16), nullable=False),  # camt, csv, stripe-csv, stripe-api
    Column("name", String(200), nullable=False),  # the file's name, or the statement's id
    Column("lines_read", Integer, nullable=False),
    Column("lines_added", Integer, nullable=False),
    Column("imported_by", String(48)),
    Column("imported_ms", BigInteger, nullable=False),
)

lines = Table(
    "reconciliation_lines",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("statement_id", Id, ForeignKey("reconciliation_statements.id"), nullable=False),
    Column("account", String(32), nullable=False),
    Column("line_key", String(160), nullable=False),
    Column("occurrence", Integer, nullable=False),  # 1, or n for the n-th same line of a file
    Column("booked", String(10), nullable=False),  # ISO date
    Column("value_date", String(10)),
    Column("amount", BigInteger, nullable=False),  # cents; + into the account, - out of it
    Column("reference", String(140)),  # AcctSvcrRef, Stripe's txn id
    Column("end_to_end", String(140)),  # EndToEndId, Stripe's source (ch_, re_, po_)
    Column("extra_ref", String(140)),  # Stripe's payment intent
    Column("label", Text, nullable=False, server_default=text("''")),  # RmtInf/Ustrd
    UniqueConstraint("account", "line_key", name="uq_reconciliation_lines_key"),
    CheckConstraint("amount <> 0", name="nonzero"),
    CheckConstraint("occurrence >= 1", name="occurrence"),
)

matches = Table(
    "reconciliation_matches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("line_id", Id, ForeignKey("reconciliation_lines.id"), nullable=False, index=True),
    Column("transfer_id", Id, ForeignKey("transfers.id"), nullable=False),
    Column("account", String(32), nullable=False),
    Column("how", String(16), nullable=False),
    Column("note", String(280)),
    Column("matched_by", String(48)),
    Column("matched_ms", BigInteger, nullable=False),
    Column("undone_by", String(48)),
    Column("undone_ms", BigInteger),
    # The movement's place among those the bank booked on the line: 0 for the only one.
    Column("part", Integer, nullable=False, server_default=text("0")),
    CheckConstraint("how IN ('reference', 'amount', 'hand')", name="how"),
    CheckConstraint("how <> 'hand' OR note IS NOT NULL", name="hand_has_note"),
    CheckConstraint("part >= 0", name="part"),
)
# A line is matched once (one movement, or one batch of them), a ledger movement once
# (while the match stands).
Index(
    "uq_reconciliation_matches_line",
    matches.c.line_id,
    matches.c.part,
    unique=True,
    sqlite_where=text("undone_ms IS NULL"),
    postgresql_where=text("undone_ms IS NULL"),
)
Index(
    "uq_reconciliation_matches_movement",
    matches.c.transfer_id,
    matches.c.account,
    unique=True,
    sqlite_where=text("undone_ms IS NULL"),
    postgresql_where=text("undone_ms IS NULL"),
)
