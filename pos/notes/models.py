"""The series of paper notes the association printed. Made by migration 0012.

A series is the ledger's `note_print` transfer; where each of its notes is (printed stock,
an office, in circulation, deposited, void) is read from the ledger's transfers, by the
one-time token each state's exit used up (`ledger.operations.note_once`). This row lists
the series and says who made it; a row missing after a crash is rebuilt from the ledger.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Integer, String, Table

from ledger.models import metadata

note_series = Table(
    "note_series",
    metadata,
    Column("id", String(8), primary_key=True),  # printed on every note: "A", "2027B"
    Column("denomination", BigInteger, nullable=False),  # cents of the local unit
    Column("count", Integer, nullable=False),  # serials 1 to count
    Column("valid_until", BigInteger),  # the last second its notes are good; none: no end
    Column("created_by", String(48), ForeignKey("members.id")),
    Column("created_ms", BigInteger, nullable=False),
    Column("state", String(16), nullable=False, server_default="printed"),  # or voided
    Column("voided_ms", BigInteger),
    CheckConstraint("denomination IN (100, 200, 500, 1000, 2000)", name="denomination"),
    CheckConstraint("count BETWEEN 1 AND 10000", name="count"),
    CheckConstraint("state IN ('printed', 'voided')", name="state"),
    CheckConstraint("(state = 'voided') = (voided_ms IS NOT NULL)", name="voided"),
)
