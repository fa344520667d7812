"""The plugin's own tables, on the node's shared metadata; made by its own migration."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, String, Table, Text

from ledger.models import Id, metadata

STATES = ("proposed", "rejected", "open", "funded", "missed")

campaigns = Table(
    "crowdfunding_campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("owner", String(64), nullable=False, index=True),  # who proposed it
    Column("beneficiary", String(64), nullable=False),  # a member id (the commune's, say)
    Column("title", String(120), nullable=False),
    Column("description", Text, nullable=False),
    Column("goal", BigInteger, nullable=False),
    Column("days", Integer, nullable=False),
    Column("state", String(12), nullable=False),
    Column("reason", String(500)),  # of a rejection
    Column("match_per_unit_bp", Integer, nullable=False, server_default="0"),  # basis points
    Column("match_cap", BigInteger, nullable=False, server_default="0"),
    Column("created_ms", BigInteger, nullable=False),
    Column("opens_ms", BigInteger),
    Column("deadline_ms", BigInteger),
    Column("closed_ms", BigInteger),
    Column("raised", BigInteger),  # what the counted pledges held when it closed
    Column("picture", LargeBinary),  # re-encoded JPEG, without metadata
)

# Escrow payments into a campaign's escrow or the matching fund, as the log holds them.
payments = Table(
    "crowdfunding_payments",
    metadata,
    Column("transfer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("escrow", String(96), nullable=False, index=True),
    Column("campaign", BigInteger, index=True),  # None: the matching fund
    Column("member", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("counted", Integer, nullable=False, server_default="0"),  # in the closing total
    Column("created_ms", BigInteger, nullable=False),
)

# Units out of those escrows: refunds and releases, each referring to its payment.
movements = Table(
    "crowdfunding_movements",
    metadata,
    Column("transfer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),  # escrow_refund, escrow_release
    Column("ref", BigInteger, nullable=False, index=True),  # the payment
    Column("escrow", String(96), nullable=False, index=True),
    Column("campaign", BigInteger, index=True),  # for a matching release: the campaign
    Column("to_account", String(96), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("rule", String(64)),
    Column("created_ms", BigInteger, nullable=False),
)

updates = Table(
    "crowdfunding_updates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign", BigInteger, nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

tiers = Table(
    "crowdfunding_tiers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign", BigInteger, nullable=False, index=True),
    Column("minimum", BigInteger, nullable=False),
    Column("title", String(120), nullable=False),
    Column("description", String(500), nullable=False),
    Column("most_backers", Integer),
)
