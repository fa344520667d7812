"""The tables of payouts: merchants' bank details (an append-only history, each version
signed by the merchant's device key) and the treasurer's transfer batches."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from ledger.models import Id, metadata

BATCH_STATES = ("unpaid", "paid", "cancelled")

# One row per version: nothing is updated or deleted; the current details are the latest.
bank_details = Table(
    "bank_details",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False),
    Column("version", Integer, nullable=False),  # 1, 2, ...: two changes at once cannot both land
    Column("iban", String(34), nullable=False),
    Column("bic", String(11), nullable=False),
    Column("holder", String(70), nullable=False),
    Column("key_id", String(48), nullable=False),  # the device key that signed
    Column("statement", Text, nullable=False),  # the signed statement, canonical JSON
    Column("signature", String(100), nullable=False),  # base64url
    Column("nonce", String(64), nullable=False, unique=True),  # a replayed statement is refused
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("member_id", "version", name="uq_bank_details_version"),
    CheckConstraint("version >= 1", name="bank_details_version"),
)

payout_batches = Table(
    "payout_batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("status", String(12), nullable=False),
    Column("message_id", String(35), nullable=False, unique=True),  # the file's MsgId
    Column("sepa_xml", Text, nullable=False),  # the file as first written: downloaded again as is
    Column("total", BigInteger, nullable=False),  # euro cents
    Column("count", Integer, nullable=False),
    Column("created_by", String(48), ForeignKey("members.id"), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("bank_ref", String(128)),
    Column("decided_by", String(48), ForeignKey("members.id")),
    Column("decided_ms", BigInteger),
    # The treasurer's request id (migration 0021): the same request again gets this batch.
    Column("client_id", String(48)),
    CheckConstraint(f"status IN {BATCH_STATES!r}", name="payout_batch_status"),
    CheckConstraint("status <> 'paid' OR bank_ref IS NOT NULL", name="payout_batch_paid_ref"),
    CheckConstraint("total > 0 AND count > 0", name="payout_batch_sums"),
)

payout_items = Table(
    "payout_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("batch_id", Id, ForeignKey("payout_batches.id"), nullable=False, index=True),
    Column("reconversion_id", Id, ForeignKey("reconversions.id"), nullable=False),
    Column("bank_details_id", Id, ForeignKey("bank_details.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),  # euro cents, the reconversion's net
    # Set when the batch is cancelled: the reconversion is free for another batch.
    Column("released_ms", BigInteger),
    CheckConstraint("amount > 0", name="payout_item_amount"),
)

Index("uq_payout_batches_client_id", payout_batches.c.client_id, unique=True)

# A reconversion is in at most one batch not cancelled (so at most one unpaid batch).
Index(
    "uq_payout_items_live",
    payout_items.c.reconversion_id,
    unique=True,
    sqlite_where=text("released_ms IS NULL"),
    postgresql_where=text("released_ms IS NULL"),
)

# A reconversion being paid or rejected alone (migration 0021): written, in the same locked
# transaction that finds it in no live batch, before its decision is posted to the ledger;
# a file made meanwhile finds it here and leaves it out. Removed when the decision fails.
payout_holds = Table(
    "payout_holds",
    metadata,
    Column("reconversion_id", Id, ForeignKey("reconversions.id"), primary_key=True),
    Column("held_by", String(48), ForeignKey("members.id"), nullable=False),
    Column("held_ms", BigInteger, nullable=False),
)
