"""What card top-ups read and answer (Pydantic). Amounts are integer euro cents, always."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from wallet_api.office.schemas import RequestId
from web.schemas import Strict


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


# -- the treasurer and card shortfalls -------------------------------------------------------


class ShortfallOut(BaseModel):
    payment_intent: str
    member_id: str
    member_name: str
    topup_transfer_id: int
    amount: int = Field(description="The card top-up, in cents.")
    shortfall: int = Field(description="Units owed: Stripe took the euros back, they were spent.")
    settleable: int = Field(
        description="What may be settled now (the rest waits for a dispute still open)."
    )
    since_ms: int | None = Field(description="When the payment began to owe.")
    wallet_balance: int = Field(description="What the member's wallet holds now.")
    frozen: bool


class FrozenWalletOut(BaseModel):
    member_id: str
    member_name: str
    reason: str
    owed: int = Field(description="Units the member owes for card payments (0: may unfreeze).")


class TakeBackCreate(Strict):
    id: str = RequestId


class WriteOffCreate(Strict):
    id: str = RequestId
    reason: str = Field(min_length=1, max_length=200, description="Why the association bears it.")


class UnfreezeCreate(Strict):
    id: str = RequestId
    reason: str = Field(min_length=1, max_length=200, description="Why the wallet is unfrozen.")


class SettlementOut(BaseModel):
    id: int
    request_id: str
    action: str = Field(description="taken_back, written_off or unfrozen.")
    member_id: str
    member_name: str
    payment_intent: str | None
    amount: int = Field(description="Units taken out of circulation (0 for an unfreeze).")
    reason: str | None
    treasurer_id: str
    treasurer_name: str
    created_ms: int
    reversal_id: int | None = Field(
        description="The transfer that settled it: a card reversal, or a card write-off."
    )
    topup_id: int | None = Field(
        description="A write-off: the transfer that put the association's euros in (the "
        "card write-off itself)."
    )
    replayed: bool = False
