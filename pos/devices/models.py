"""The devices a merchant paired with the shop's counter. Made by migration 0013.

A row is made with its pairing code, of which only the hash is kept: good once, for ten
minutes. Using it sets `used_ms` and the device's key (`key_id`, a counter key of the shop in
the ledger) in one conditional UPDATE: two devices sending the same code end with one
pairing. The device's session (members' `sessions`, scope `pos`) names the same key.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, LargeBinary, String, Table

from ledger.models import Id, metadata

counter_devices = Table(
    "counter_devices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False, index=True),
    Column("label", String(80), nullable=False),  # "Caisse 1", as the merchant named it
    Column("code_hash", LargeBinary(32), nullable=False, unique=True),  # sha256 of the code
    Column("code_expires_ms", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger),  # the code's one use
    Column("key_id", String(32), unique=True),  # the counter key it was used with
    Column("paired_ms", BigInteger),  # key registered, session opened
    Column("removed_ms", BigInteger),  # unpaired, or the code withdrawn
    CheckConstraint("length(label) > 0", name="label"),
    CheckConstraint("(used_ms IS NULL) = (key_id IS NULL)", name="used_by_key"),
    CheckConstraint("paired_ms IS NULL OR used_ms IS NOT NULL", name="paired_once_used"),
)
