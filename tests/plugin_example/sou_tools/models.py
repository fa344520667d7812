"""The plugin's own table, on the node's shared metadata; made by its own migration."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from ledger.models import Id, metadata

LOAN_STATES = ("waiting_deposit", "out", "returned", "lost")

tool_loans = Table(
    "tool_loans",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("member", String(64), nullable=False, index=True),
    Column("tool", String(80), nullable=False),
    Column("deposit", BigInteger, nullable=False),
    Column("state", String(20), nullable=False),
    Column("deposit_transfer", BigInteger),  # the member's escrow payment, once posted
    Column("created_ms", BigInteger, nullable=False),
    Column("reminders", Integer, nullable=False, server_default="0"),
)
