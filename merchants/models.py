"""The table of reconversion requests. (The trade details of members who sell:
`members/models.py`.)"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, String, Table, Text

from ledger.models import Id, metadata

RECONVERSION_STATES = ("pending", "paid", "rejected")

reconversions = Table(
    "reconversions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),  # units taken from the wallet
    Column("fee", BigInteger, nullable=False),  # of which kept as fee (association + cause)
    Column("cause_fee", BigInteger, nullable=False),  # the cause's part of the fee
    # The redemption that took the units out of circulation at request time.
    Column("redemption_id", Id, ForeignKey("transfers.id"), nullable=False, unique=True),
    Column("status", String(12), nullable=False),
    Column("bank_ref", String(128)),
    Column("decided_by", String(48), ForeignKey("members.id")),
    # The payout (paid) or the correction that gave the units back (rejected).
    Column("decision_id", Id, ForeignKey("transfers.id"), unique=True),
    Column("reason", Text),
    Column("created_ms", BigInteger, nullable=False),
    Column("decided_ms", BigInteger),
    CheckConstraint(
        "amount > 0 AND fee >= 0 AND cause_fee >= 0 AND cause_fee <= fee", name="cents"
    ),
    CheckConstraint(f"status IN {RECONVERSION_STATES!r}", name="status"),
    CheckConstraint("(status = 'pending') = (decision_id IS NULL)", name="decided_with_transfer"),
    CheckConstraint("status <> 'paid' OR bank_ref IS NOT NULL", name="paid_with_reference"),
)
