"""What the reconciliation's API takes and answers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from audits.reconciliation import service
from audits.reconciliation.repository import Movement


class LineOut(BaseModel):
    id: int
    booked: str
    amount: int = Field(description="Cents: + into the account, - out of it.")
    reference: str | None
    end_to_end: str | None
    label: str
    duplicate: bool = Field(description="The same bank line seen earlier in the same file.")


class MovementOut(BaseModel):
    transfer_id: int
    kind: str
    amount: int
    created_ms: int
    references: list[str]
    slip: str | None = Field(None, description="A cash deposit's paying-in slip (signed).")
    reconversion_id: int | None = Field(None, description="The reconversion a payout paid.")
    reconciled_by_hand: str | None = Field(
        None,
        description="The bank reference the treasurer typed marking it found on the "
        "statement by hand elsewhere (an office's deposit, on the offices' page).",
    )
    confirm_at: str | None = Field(
        None,
        description="The page showing what this movement confirms: the office's deposit "
        "(reconciled there while the match stands), the reconversion's transfer file.",
    )


class MatchOut(BaseModel):
    id: int
    how: str = Field(description="reference, amount (and date) or hand")
    note: str | None
    line: LineOut
    movement: MovementOut
    part: int = Field(
        0, description="The movement's place among those booked on the line: 0 for the first."
    )
    parts: int = Field(
        1,
        description="How many movements the line books: 1, or more when the bank booked a "
        "whole transfer file on this one line (a batch). Each is a match of the same line; "
        "undoing any of them undoes them all.",
    )


class HandMatchOut(MatchOut):
    """The line's first match, and every match made (one, or the batch's)."""

    batch: list[MatchOut] = Field(description="Every match made, in their order on the line.")


class NearMissOut(BaseModel):
    line: LineOut
    movement: MovementOut
    difference: int = Field(description="The line's amount minus the movement's, in cents.")


class AccountOut(BaseModel):
    account: str
    all_matched: bool
    matched_total: int = Field(
        description="The matched lines' amounts, in cents: a batch's line counted once."
    )
    unmatched_lines_total: int
    unmatched_movements_total: int
    matched: list[MatchOut] = Field(
        description="One per movement matched: a batch's line is in several, by part."
    )
    unmatched_lines: list[LineOut]
    unmatched_movements: list[MovementOut]
    near_misses: list[NearMissOut]


class ImportedOut(BaseModel):
    statement_id: int
    account: str
    read: int = Field(description="Lines in the file.")
    added: int = Field(description="Lines new to the node (0 for a statement imported again).")
    matched: int = Field(description="Matches this import made.")
    view: AccountOut


TransferId = Annotated[int, Field(ge=1, le=2**53)]


class HandMatch(BaseModel):
    """A line and the transfer it goes with (`transfer_id`), or the transfers the bank
    booked together on it (`transfer_ids`, which must add up to the line to the cent);
    given both, the transfers are all of them."""

    model_config = ConfigDict(extra="forbid")
    line_id: int = Field(ge=1, le=2**53)
    transfer_id: TransferId | None = Field(None, description="The one transfer the line goes with.")
    transfer_ids: list[TransferId] = Field(
        default_factory=list,
        max_length=service.MAX_PARTS,
        description="The transfers the bank booked on this one line (a whole transfer file).",
    )
    note: str = Field(min_length=1, max_length=280)

    @property
    def transfers(self) -> list[int]:
        return ([self.transfer_id] if self.transfer_id is not None else []) + self.transfer_ids


def line_out(line: service.Line) -> LineOut:
    return LineOut(
        id=line.id,
        booked=line.booked,
        amount=line.amount,
        reference=line.reference,
        end_to_end=line.end_to_end,
        label=line.label,
        duplicate=line.duplicate,
    )


def movement_out(m: Movement) -> MovementOut:
    return MovementOut(
        transfer_id=m.transfer_id,
        kind=m.kind,
        amount=m.amount,
        created_ms=m.created_ms,
        references=sorted(m.references),
        slip=m.slip,
        reconversion_id=m.reconversion,
        reconciled_by_hand=m.reconciled_by_hand,
        confirm_at=service.confirm_at(m),
    )


def match_out(m: service.Match) -> MatchOut:
    return MatchOut(
        id=m.id,
        how=m.how,
        note=m.note,
        line=line_out(m.line),
        movement=movement_out(m.movement),
        part=m.part,
        parts=m.parts,
    )


def hand_match_out(made: list[service.Match]) -> HandMatchOut:
    every = [match_out(m) for m in made]
    return HandMatchOut(**every[0].model_dump(), batch=every)


def account_out(v: service.AccountView) -> AccountOut:
    return AccountOut(
        account=v.account,
        all_matched=v.all_matched,
        matched_total=v.matched_total,
        unmatched_lines_total=v.unmatched_lines_total,
        unmatched_movements_total=v.unmatched_movements_total,
        matched=[match_out(m) for m in v.matched],
        unmatched_lines=[line_out(x) for x in v.unmatched_lines],
        unmatched_movements=[movement_out(x) for x in v.unmatched_movements],
        near_misses=[
            NearMissOut(
                line=line_out(n.line), movement=movement_out(n.movement), difference=n.difference
            )
            for n in v.near_misses
        ],
    )


def imported_out(i: service.Imported) -> ImportedOut:
    return ImportedOut(
        statement_id=i.statement_id,
        account=i.account,
        read=i.read,
        added=i.added,
        matched=i.matched,
        view=account_out(i.view),
    )
