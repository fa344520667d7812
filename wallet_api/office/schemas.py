"""What the exchange office's API reads and answers. Amounts are integer cents."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictInt

from web.schemas import Strict

# A client-chosen id per request (a UUID is fine): a repeat with the same id is harmless.
RequestId = Field(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$",
    description="Chosen by the client for this request; sending it again is harmless.",
)


class CashInCreate(Strict):
    id: str = RequestId
    member: str = Field(
        min_length=1,
        max_length=254,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The member's id (or email address).",
    )
    amount: StrictInt = Field(description="Cash received, in cents of euro (= units credited).")


class CashInOut(BaseModel):
    transfer_id: int
    office: str
    member: str
    amount: int
    memo: str | None
    created_ms: int
    replayed: bool = False


class DepositCreate(Strict):
    id: str = RequestId
    amount: StrictInt = Field(description="Cash taken to the bank, in cents.")
    slip_ref: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 _./#-]{0,63}$",
        description="The reference of the bank's paying-in slip.",
    )


class StatementLineOut(BaseModel):
    line_id: int | None
    booked: str | None = Field(description="The day the bank booked the line (ISO date).")
    reference: str | None = Field(description="The bank's own reference of the line, if any.")
    matched_ms: int
    matched_by: str | None = Field(description="The treasurer; null when matched automatically.")
    account: str | None = Field(description="The statement's account (reserve:digital).")


class DepositOut(BaseModel):
    transfer_id: int
    office: str
    amount: int
    slip_ref: str | None
    recorded_by: str | None
    created_ms: int
    reconciled: bool = Field(
        description="Found on the bank statement: marked by hand (`bank_ref`), or matched to "
        "a line of an imported statement (`statement_line`), or both."
    )
    bank_ref: str | None = Field(description="The reference the treasurer typed, by hand.")
    reconciled_by: str | None
    reconciled_ms: int | None
    statement_line: StatementLineOut | None = Field(
        description="The line of an imported statement the reconciliation matched it to "
        "(undoing that match takes it away)."
    )
    replayed: bool = False


class OfficeOut(BaseModel):
    office: str
    till: int = Field(description="Cash in the till, in cents of euro.")
    cash_ins: list[CashInOut]
    deposits: list[DepositOut]


class OfficeSummaryOut(BaseModel):
    office: str
    till: int
    cash_ins_total: int
    cash_ins_count: int
    deposits_total: int
    deposits_count: int
    unreconciled_total: int
    unreconciled: list[DepositOut]
    recent_deposits: list[DepositOut] = Field(
        description="The office's latest deposits, reconciled or not, and how."
    )


class Reconciliation(Strict):
    bank_ref: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
