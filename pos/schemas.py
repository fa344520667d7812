"""What the counter's API reads and writes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from web.schemas import ONE_LINE, SignedOrderIn, Strict
from web.text import VisibleLine


class InvoiceIn(Strict):
    amount: int = Field(ge=1, le=2**53 - 1, description="Cents of the local unit.")
    label: VisibleLine | None = Field(None, max_length=80, pattern=ONE_LINE)
    ttl_s: int = Field(600, ge=60, le=3600, description="Seconds the code stays valid.")


class InvoiceOut(BaseModel):
    id: str
    merchant: str
    shop: str
    amount: int
    currency: str
    label: str | None
    state: str = Field(description="open, paid, cancelled or expired")
    created_ms: int
    expires_ms: int
    url: str = Field(description="What the QR code carries: the pay page, signed by the node.")
    transfer_id: int | None = None
    payer_name: str | None = None
    paid_ms: int | None = None


class InvoicePaymentIn(SignedOrderIn):
    """A payment order naming the invoice, signed on the customer's device."""


class ShopPaymentIn(SignedOrderIn):
    """A payment of the amount the customer typed, from the shop's counter sticker."""


class RefundIn(SignedOrderIn):
    """A refund order (kind refund, ref: the payment), signed by a key of the shop."""


class PaidOut(BaseModel):
    transfer_id: int
    amount: int
    created_ms: int
    replayed: bool


class SaleOut(BaseModel):
    transfer_id: int
    kind: str = Field(description="payment, or refund (amount below zero)")
    amount: int
    customer: str
    customer_name: str
    invoice: str | None
    memo: str | None
    created_ms: int
    refunded: int
    refund_of: int | None


class DayOut(BaseModel):
    day: str
    currency: str
    takings: int
    payments: int
    items: list[SaleOut]


class LinkOut(BaseModel):
    """What a scanned link asks, as the pay page shows it before anyone confirms."""

    merchant: str
    account: str
    shop: str
    place: str | None
    amount: int | None = Field(description="Fixed by an invoice; none for a sticker")
    currency: str
    invoice: InvoiceOut | None
