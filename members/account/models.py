"""The tables of one's access: password-reset links (what limits asking for them and guessing
one's current password is counted with the login limits, `members.logins`). Made by
migration 0015, which also gives `sessions` the moment each was last used, and the browser
and address it came from.

A reset link's token is kept only as its hash. Using it sets `used_ms` in one conditional
UPDATE: two clicks at once set one password.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    LargeBinary,
    String,
    Table,
)

from ledger.models import Id, metadata

password_resets = Table(
    "password_resets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),  # sha256 of the token
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False, index=True),
    # Who made it: none when the member asked by email, else the operator at the office.
    Column("made_by", String(48), ForeignKey("members.id")),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger),
    CheckConstraint("expires_ms > created_ms", name="expires_after_made"),
)
