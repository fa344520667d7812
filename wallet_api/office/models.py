"""Exchange offices' deposits of cash to the bank, as the treasurer reconciles them.

The deposit itself is a `cash_deposit` transfer in the ledger (the till to the reserve);
this row adds what the ledger does not hold: the bank slip, who recorded it, and the
treasurer's confirmation that it reached the bank statement. Made by migration 0003.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, String, Table

from ledger.models import Id, metadata

office_deposits = Table(
    "office_deposits",
    metadata,
    Column("transfer_id", Id, ForeignKey("transfers.id"), primary_key=True),
    Column("office", String(48), nullable=False, index=True),
    Column("slip_ref", String(64)),  # the bank's paying-in slip; None if not recorded
    Column("recorded_by", String(48), ForeignKey("members.id")),
    Column("created_ms", BigInteger, nullable=False),
    Column("bank_ref", String(128)),  # the line of the bank statement, once reconciled
    Column("reconciled_by", String(48), ForeignKey("members.id")),
    Column("reconciled_ms", BigInteger),
    CheckConstraint(
        "(reconciled_ms IS NULL) = (bank_ref IS NULL)", name="reconciled_with_reference"
    ),
)
