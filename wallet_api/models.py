"""Tables of people and their access: members, sessions, API tokens, device labels, and the
card payments that credit wallets. Made by migration 0002; the ledger's tables stay its own.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from ledger.models import Id, metadata

ROLES = ("resident", "merchant", "office", "treasurer", "admin")
# Members who hold a wallet (a `member:<id>` account); the others are operators.
WALLET_ROLES = ("resident", "merchant")

members = Table(
    "members",
    metadata,
    # The id is the account's name: member:<id>.
    Column("id", String(48), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("display_name", String(120), nullable=False),
    Column("email", String(254), unique=True),
    Column("password_hash", Text),
    Column("office", String(48)),  # the exchange office an operator works at
    Column("locale", String(5), nullable=False, server_default="fr"),
    Column("membership_until", Date),  # adhésion paid up to this day
    Column("frozen_reason", Text),  # set while a card dispute leaves units owed
    Column("created_ms", BigInteger, nullable=False),
    CheckConstraint(f"role IN {ROLES!r}", name="role"),
    CheckConstraint("role <> 'office' OR office IS NOT NULL", name="office_operator"),
    CheckConstraint("email = lower(email)", name="email_lowercase"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),  # sha256 of the cookie's token
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

TOKEN_SCOPES = ("wallet", "pos")

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False, index=True),
    Column("scope", String(16), nullable=False),
    Column("label", String(80), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
    CheckConstraint(f"scope IN {TOKEN_SCOPES!r}", name="scope"),
)

# Labels people give their device keys; the keys themselves live in the ledger's key table.
devices = Table(
    "devices",
    metadata,
    Column("key_id", String(32), ForeignKey("keys.key_id"), primary_key=True),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False, index=True),
    Column("label", String(80), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("subject", String(300), primary_key=True),  # "<email>" and "ip:<address>"
    Column("count", Integer, nullable=False),
    Column("window_start_ms", BigInteger, nullable=False),
)

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
