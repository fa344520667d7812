"""Tables of the card payments that credit wallets, and the Stripe events seen. Made by
migration 0002; the members' tables are `members/models.py`, the ledger's its own.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    String,
    Table,
    Text,
)

from ledger.models import Id, metadata

CARD_STATES = ("created", "credited", "refunded", "disputed", "dispute_lost", "failed")

card_payments = Table(
    "card_payments",
    metadata,
    Column("payment_intent", String(255), primary_key=True),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("topup_transfer_id", Id, ForeignKey("transfers.id"), unique=True),
    Column("reversed", BigInteger, nullable=False, server_default="0"),  # cents taken back
    Column("held", BigInteger, nullable=False, server_default="0"),  # cents frozen in escrow
    Column("shortfall", BigInteger, nullable=False, server_default="0"),  # owed, not found
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="amount"),
    CheckConstraint(f"status IN {CARD_STATES!r}", name="status"),
    CheckConstraint("reversed >= 0 AND held >= 0 AND shortfall >= 0", name="cents"),
    CheckConstraint("reversed + held <= amount", name="within_amount"),
)

stripe_events = Table(
    "stripe_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("type", String(80), nullable=False),
    Column("payment_intent", String(255)),
    Column("outcome", Text, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
)
