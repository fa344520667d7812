"""The invoices of points of sale. Made by migration 0011.

Whether an invoice is paid is the ledger's to say: its payment is the one transfer whose
one-time token is the invoice's (`ledger.operations.invoice_once`). Nothing here records it,
so no crash between the payment and a second write can leave the two disagreeing.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledger.models import metadata

pos_invoices = Table(
    "pos_invoices",
    metadata,
    Column("id", String(24), primary_key=True),  # random, unguessable: it is in the QR code
    Column("merchant_id", String(48), ForeignKey("members.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("label", String(80)),
    Column("created_by", String(64), nullable=False),  # "member:<id>" or "token:<id>"
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("cancelled_ms", BigInteger),
    CheckConstraint("amount > 0", name="amount"),
    CheckConstraint("expires_ms > created_ms", name="expiry"),
    Index("ix_pos_invoices_merchant", "merchant_id", "created_ms"),
)

# A customer-presented authorisation, kept for two minutes under a short code that the
# shop's point of sale scans or types. The ledger holds the authorisation itself (in the
# collection that uses it) and whether it was used; this row only finds it.
pos_authorisations = Table(
    "pos_authorisations",
    metadata,
    Column("code", String(12), primary_key=True),
    Column("payer_id", String(48), ForeignKey("members.id"), nullable=False),
    Column("auth_id", String(64), nullable=False),
    Column("auth", Text, nullable=False),  # base64url of its canonical bytes
    Column("auth_sig", String(100), nullable=False),
    Column("cap", BigInteger, nullable=False),
    Column("shop_id", String(48), ForeignKey("members.id")),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    UniqueConstraint("payer_id", "auth_id", name="uq_pos_authorisations_payer_id"),
    CheckConstraint("cap > 0", name="cap"),
)

# An offline certificate the node signed for a device key: shops offline may accept that
# device's authorisations up to `cap` until `expires_ms`, so the member's offline allowance
# stays reserved until then.
pos_certificates = Table(
    "pos_certificates",
    metadata,
    Column("id", String(24), primary_key=True),
    Column("member_id", String(48), ForeignKey("members.id"), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("cap", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    CheckConstraint("cap > 0", name="cap"),
    Index("ix_pos_certificates_member", "member_id", "expires_ms"),
)
