"""What the paper notes' API reads and writes. Amounts are integer cents."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field, StrictInt

from web.schemas import ONE_LINE, SignedOrderIn, Strict

Serial = Field(ge=1, le=10_000, description="A serial number of the series.")


class SeriesIn(Strict):
    series: str = Field(min_length=1, max_length=8, description="A, B27...: printed on the notes.")
    denomination: StrictInt = Field(description="Cents: 100, 200, 500, 1000 or 2000.")
    count: StrictInt = Field(description="How many notes: serials 1 to count.")
    valid_until: date | None = Field(None, description="The last day the notes are good.")


class SeriesOut(BaseModel):
    series: str
    denomination: int
    count: int
    valid_until: int | None = Field(description="The last second the notes are good.")
    state: str = Field(description="printed, or voided (declared lost)")
    created_ms: int
    stock: int = Field(description="Notes printed and not sent to an office.")
    offices: dict[str, int] = Field(description="Notes at each office, not sold yet.")
    circulation: int
    deposited: int
    void: int
    next_in_stock: int | None


class RangeIn(Strict):
    series: str = Field(min_length=1, max_length=8)
    first: StrictInt = Serial
    last: StrictInt = Serial


class DispatchIn(RangeIn):
    office: str = Field(min_length=1, max_length=48, pattern=r"^[a-z0-9][a-z0-9_.-]*$")


class VoidIn(RangeIn):
    reason: str = Field(min_length=1, max_length=280, pattern=ONE_LINE)


class MovedOut(BaseModel):
    series: str
    count: int
    amount: int = Field(description="What the notes are worth, in cents.")
    first: int
    last: int


class HoldingOut(BaseModel):
    series: str
    denomination: int
    count: int
    runs: list[tuple[int, int]] = Field(description="Runs of consecutive serials held.")


class OfficeNotesOut(BaseModel):
    office: str
    till: int = Field(description="Euros in the till, in cents.")
    note_cash: int = Field(description="Of which from notes sold, not yet at the bank.")
    holdings: list[HoldingOut]


class NoteCashDepositIn(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$")
    amount: StrictInt = Field(description="Cash taken to the paper reserve, in cents.")
    slip_ref: str = Field(min_length=1, max_length=64, pattern=ONE_LINE)


class NoteCashDepositOut(BaseModel):
    transfer_id: int
    amount: int


class LinkIn(Strict):
    link: str = Field(
        min_length=1, max_length=65_536, description="What the note's QR code says (its URL)."
    )


class NoteOut(BaseModel):
    series: str
    serial: int
    denomination: int
    currency: str
    state: str = Field(description="stock, office, circulation, deposited or void")
    genuine: bool = Field(description="Made by this node (always, once answered).")
    spendable: bool = Field(description="In circulation: worth its value.")
    sale: int | None = Field(description="The sale's transfer, which a deposit refers to.")
    moved_ms: int | None
    valid_until: int | None


class NoteDepositIn(SignedOrderIn):
    """A `note_deposit` order signed by a key of the merchant, and the note's link."""

    link: str = Field(min_length=1, max_length=65_536)


class NoteDepositOut(BaseModel):
    transfer_id: int
    series: str
    serial: int
    amount: int
    created_ms: int
    replayed: bool
