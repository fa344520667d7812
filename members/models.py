"""Tables of people and their access: members, sessions, API tokens, device labels, failed
logins, and the trade details of members who sell (their shops). Made by migrations 0002
and 0010 (shops); the ledger's tables stay its own.
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
    # A person's session (`wallet`), or a shop's counter device (`pos`, migration 0013),
    # which acts as a `pos` token does and holds the counter key it was paired with.
    Column("scope", String(16), nullable=False, server_default="wallet"),
    Column("key_id", String(32), index=True),
    # When it was last used, written at most every few minutes: one unused for the idle
    # time ends (migration 0015); and where from, for the member's list of sessions.
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("user_agent", String(200)),
    Column("address", String(64)),
    CheckConstraint("scope IN ('wallet', 'pos')", name="scope"),
    CheckConstraint("(scope = 'pos') = (key_id IS NOT NULL)", name="counter_key"),
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

# What slows password guessing (`members.logins`): failures counted per subject, one of
# "pair:<hash of email and address or device>", "email:<email>", "ip:<address>"; and the
# sign-ups per address, "join:<address>".
login_failures = Table(
    "login_failures",
    metadata,
    Column("subject", String(300), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("window_start_ms", BigInteger, nullable=False),
    # A pair may not try again before this moment (migration 0014): the growing delay.
    Column("blocked_until_ms", BigInteger, nullable=False, server_default="0"),
)

# The browsers a member logged in from: a long-lived cookie, only its hash kept. A known
# device is spared the ceilings an attacker runs into (`members.logins`).
login_devices = Table(
    "login_devices",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
)

# What a merchant gives on joining: written with the member, read by every feature that
# names a shop (the reconversion queue, the pages, the search for whom to pay). The member
# id names the ledger account and never changes; the shop is known to the public by its
# `slug`, made from the trade name. A shop is listed and paid at the counter only once the
# association has approved it (migration 0010).
SHOP_STATES = ("pending", "approved", "suspended")

merchants = Table(
    "merchants",
    metadata,
    Column("member_id", String(48), ForeignKey("members.id"), primary_key=True),
    Column("trade_name", String(120), nullable=False),
    Column("category", String(60), nullable=False),
    Column("address", Text, nullable=False),
    Column("siret", String(14)),
    Column("slug", String(64), nullable=False, unique=True),  # /shops/<slug>
    Column("place", String(80), nullable=False),  # the town or village
    # The trade name and place folded (lowercase, no accents): what searches compare.
    Column("search_text", String(250), nullable=False),
    Column("status", String(12), nullable=False),
    Column("decided_by", String(48), ForeignKey("members.id")),  # none: approved at 0010
    Column("decided_ms", BigInteger),
    CheckConstraint("siret IS NULL OR length(siret) = 14", name="siret"),
    CheckConstraint("length(slug) > 0 AND slug = lower(slug)", name="slug"),
    CheckConstraint("length(place) > 0", name="place"),
    CheckConstraint(f"status IN {SHOP_STATES!r}", name="status"),
    CheckConstraint("(status = 'pending') = (decided_ms IS NULL)", name="decided_when"),
)
