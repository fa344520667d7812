"""The merchants' consents to be named among the most active merchants. Made by migration 0019.

Append-only: each time a merchant gives or withdraws their consent, a row says so and when;
the latest row of a merchant is their answer (none: not listed).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, String, Table

from ledger.models import Id, metadata

report_consents = Table(
    "report_consents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False),
    Column("listed", Boolean, nullable=False),  # True: consent given; False: withdrawn
    Column("recorded_ms", BigInteger, nullable=False),
    Index("ix_report_consents_member", "member_id", "id"),
)
