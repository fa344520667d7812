"""What card top-ups keep beside `card_payments` (wallet_api/models.py): each Stripe dispute,
when a card payment's shortfall began, and what the treasurer did about shortfalls.

The units themselves move in the ledger (holds, releases, reversals, top-ups); these rows
say which Stripe fact or which decision each movement answers. Made by migration 0005.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, String, Table, Text

from ledger.models import Id, metadata

DISPUTE_STATES = ("open", "won", "lost")
SETTLEMENTS = ("taken_back", "written_off", "unfrozen")

# One row per Stripe dispute (a charge may be disputed again after a dispute closed).
card_disputes = Table(
    "card_disputes",
    metadata,
    Column("dispute_id", String(255), primary_key=True),
    Column(
        "payment_intent",
        String(255),
        ForeignKey("card_payments.payment_intent"),
        nullable=False,
        index=True,
    ),
    Column("amount", BigInteger, nullable=False),  # cents Stripe says are disputed
    Column("held", BigInteger, nullable=False, server_default="0"),  # in the top-up's escrow
    Column("owed", BigInteger, nullable=False, server_default="0"),  # the wallet lacked them
    Column("status", String(8), nullable=False),
    Column("opened_ms", BigInteger),  # None: its closing reached us first
    Column("closed_ms", BigInteger),
    CheckConstraint(f"status IN {DISPUTE_STATES!r}", name="status"),
    CheckConstraint("amount >= 0 AND held >= 0 AND owed >= 0", name="cents"),
    CheckConstraint("(status = 'open') = (closed_ms IS NULL)", name="closed_when"),
)

# Since when a card payment has been short (its amount is card_payments.shortfall).
card_shortfalls = Table(
    "card_shortfalls",
    metadata,
    Column(
        "payment_intent",
        String(255),
        ForeignKey("card_payments.payment_intent"),
        primary_key=True,
    ),
    Column("since_ms", BigInteger, nullable=False),
)

# The treasurer's decisions: units taken back later, a shortfall written off, a wallet
# unfrozen. A row without done_ms is being posted (see cards/shortfalls.py).
card_settlements = Table(
    "card_settlements",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", String(48), nullable=False, unique=True),
    Column("action", String(12), nullable=False),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False, index=True),
    Column("payment_intent", String(255), ForeignKey("card_payments.payment_intent")),
    Column("amount", BigInteger, nullable=False, server_default="0"),
    Column("reason", Text),
    Column("treasurer_id", String(48), ForeignKey("members.id"), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("done_ms", BigInteger),
    Column("reversal_id", Id, ForeignKey("transfers.id")),  # the units taken out
    Column("topup_id", Id, ForeignKey("transfers.id")),  # the association's euros, a write-off
    CheckConstraint(f"action IN {SETTLEMENTS!r}", name="action"),
    CheckConstraint("amount >= 0", name="cents"),
    CheckConstraint("action = 'taken_back' OR reason IS NOT NULL", name="reason_given"),
    CheckConstraint("(action = 'unfrozen') = (payment_intent IS NULL)", name="what_settled"),
)
