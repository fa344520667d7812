"""The payouts API's bodies (Pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from web.schemas import Strict


class DetailsOut(BaseModel):
    """One version of a member's bank account. `iban` is whole for the member and the
    treasurer only; others read `iban_masked`."""

    member: str
    version: int
    iban: str | None = Field(None, description="Whole, for the member and the treasurer.")
    iban_masked: str = Field(description="Every character but the last 4 hidden.")
    bic: str
    holder: str
    key_id: str = Field(description="The member's device key that signed this version.")
    created_ms: int


class SignedDetailsOut(DetailsOut):
    statement: dict[str, object] = Field(description="The signed statement: order and sig.")


class HistoryOut(BaseModel):
    current: SignedDetailsOut | None
    history: list[SignedDetailsOut] = Field(description="Every version, newest first.")


class ItemOut(BaseModel):
    reconversion_id: int
    amount: int = Field(description="Euro cents sent.")
    iban: str
    bic: str
    holder: str


class BatchOut(BaseModel):
    id: int
    status: str = Field(description="unpaid, paid or cancelled.")
    message_id: str = Field(description="The file's MsgId.")
    total: int = Field(description="Euro cents, the file's control sum.")
    count: int
    created_by: str
    created_ms: int
    bank_ref: str | None
    decided_by: str | None
    decided_ms: int | None
    items: list[ItemOut] = []
    file: str = Field(description="Where the SEPA file is downloaded, again and again.")


class ApartOut(BaseModel):
    reconversion_id: int
    member: str
    amount: int = Field(description="Euro cents due.")
    why: str


class ReadyOut(BaseModel):
    reconversion_id: int
    member: str
    amount: int
    iban: str
    bic: str
    holder: str


class QueueOut(BaseModel):
    ready: list[ReadyOut]
    apart: list[ApartOut] = Field(description="Pending reconversions that cannot be paid yet.")
    batches: list[BatchOut]


class BatchCreate(Strict):
    id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$",
        description="Chosen by the client for this request (a UUID is fine): sent again, it "
        "answers the batch it made (200); with another request, 409 batch_id_conflict.",
    )
    reconversions: list[int] | None = Field(
        None,
        max_length=10_000,
        description="Exactly these reconversions (each must be ready, else 409 not_ready); "
        "every one ready if left out.",
    )


class BatchPaid(Strict):
    bank_ref: str = Field(
        min_length=1, max_length=128, description="The bank's reference of the transfer."
    )
