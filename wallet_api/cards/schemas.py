"""What card top-ups read and answer (Pydantic). Amounts are integer euro cents, always."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CardTopupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: 20.5, "2050" and true are refused, never coerced into cents
    amount: int = Field(strict=True, description="Euro cents, within the node's top-up limits.")


class CardTopupStarted(BaseModel):
    """Either `checkout_url` (go pay on Stripe's page), or a PaymentIntent for the app."""

    checkout_url: str | None = None
    payment_intent: str | None = None
    client_secret: str | None = Field(
        None, description="For Stripe's client libraries, to confirm the payment."
    )
    status: str | None = None


class CardPaymentOut(BaseModel):
    payment_intent: str
    amount: int = Field(description="Euro cents paid, and units credited.")
    status: str = Field(
        description="created, failed, credited, refunded, disputed or dispute_lost."
    )
    topup_transfer_id: int | None
    reversed: int = Field(description="Units taken back (refunds, lost dispute).")
    held: int = Field(description="Units held while a dispute is open.")
    shortfall: int = Field(description="Units owed: taken back after they were spent.")
    created_ms: int
    updated_ms: int


class WebhookReceived(BaseModel):
    received: bool = True
    outcome: str
