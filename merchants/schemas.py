"""What the reconversion API reads and answers. Amounts are integer cents."""

from __future__ import annotations

from pydantic import BaseModel, Field

from web.schemas import Strict


class QuoteOut(BaseModel):
    amount: int = Field(description="Units to reconvert, in cents.")
    fee: int = Field(description="Kept as fee, in cents: the association's plus the cause's.")
    cause_fee: int = Field(description="The cause's part of the fee, in cents.")
    association_fee: int
    net: int = Field(description="Euros paid out, in cents.")
    currency: str
    fee_bps: int = Field(description="The fee rate in basis points (300 = 3 %).")
    cause_share: int = Field(description="Percent of the fee given to the cause.")
    cause_name: str


class ReconversionOut(BaseModel):
    id: int
    member: str
    amount: int
    fee: int
    cause_fee: int
    net: int
    status: str = Field(description="pending, paid or rejected")
    redemption_id: int = Field(description="The transfer that took the units out.")
    created_ms: int
    bank_ref: str | None = None
    reason: str | None = None
    decision_id: int | None = Field(None, description="The payout or the correction.")
    decided_ms: int | None = None
    replayed: bool = False


class TreasuryReconversionOut(ReconversionOut):
    display_name: str | None
    trade_name: str | None
    decided_by: str | None


class PayoutDone(Strict):
    bank_ref: str = Field(
        min_length=1, max_length=128, description="The bank transfer's reference."
    )


class Rejection(Strict):
    reason: str = Field(min_length=1, max_length=280, description="Shown to the member.")
