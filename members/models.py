"""Tables of people and their access: members, sessions, API tokens, device labels, failed
logins, and the trade details of members who sell. Made by migration 0002; the ledger's
tables stay its own.
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

# What a merchant gives on joining: written with the member, read by every feature that
# names a shop (the reconversion queue, the pages).
merchants = Table(
    "merchants",
    metadata,
    Column("member_id", String(48), ForeignKey("members.id"), primary_key=True),
    Column("trade_name", String(120), nullable=False),
    Column("category", String(60), nullable=False),
    Column("address", Text, nullable=False),
    Column("siret", String(14)),
    CheckConstraint("siret IS NULL OR length(siret) = 14", name="siret"),
)
