"""The tool library's API, under /api/v1/tools."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ledger.signing import SignedOrder
from members.access import Admin, WalletHolder, WalletOwner, node_of
from sou_tools import errors, service
from web.schemas import SignedOrderIn

router = APIRouter(prefix="/api/v1/tools", tags=["tools"])
LoanId = Annotated[int, Path(ge=1, le=2**53)]


class LoanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: str = Field(min_length=1, max_length=80)
    deposit: int = Field(gt=0, le=2**53, description="In cents of the local unit.")


class LoanOut(BaseModel):
    id: int
    tool: str
    deposit: int
    state: str
    escrow: str


class Settled(BaseModel):
    loan: int
    transfer_id: int | None


def _out(row: dict[str, Any]) -> LoanOut:
    return LoanOut(
        id=row["id"],
        tool=row["tool"],
        deposit=row["deposit"],
        state=row["state"],
        escrow=service.escrow(row["id"]),
    )


@router.post("/loans", status_code=201, response_model=LoanOut)
def lend(body: LoanCreate, request: Request, member: WalletOwner) -> LoanOut:
    """Borrow a tool: the loan waits for its deposit, paid into the escrow it names."""
    return _out(service.lend(node_of(request), member, body.tool, body.deposit))


@router.get("/loans", response_model=list[LoanOut])
def my_loans(request: Request, member: WalletHolder) -> list[LoanOut]:
    return [_out(row) for row in service.loans_of(node_of(request), member)]


@router.post("/loans/{loan_id}/deposit", status_code=201)
def pay_deposit(
    loan_id: LoanId,
    body: SignedOrderIn,
    request: Request,
    response: Response,
    member: WalletHolder,
) -> dict[str, Any]:
    """The deposit: an escrow payment signed by one of your device keys."""
    try:
        envelope = SignedOrder.from_json(body.model_dump())
    except ValueError:
        raise errors.BAD_SIGNATURE_ENCODING() from None
    posted = service.pay_deposit(node_of(request), member, loan_id, envelope)
    if posted.replayed:
        response.status_code = 200
    return {"transfer_id": posted.transfer_id, "postings": posted.postings}


@router.post("/loans/{loan_id}/return", response_model=Settled)
def give_back(loan_id: LoanId, request: Request, _: Admin) -> Settled:
    """The tool came back: its deposit goes back to the member."""
    posted = service.give_back(node_of(request), loan_id)
    return Settled(loan=loan_id, transfer_id=posted.transfer_id if posted else None)


@router.post("/loans/{loan_id}/lost", response_model=Settled)
def declare_lost(loan_id: LoanId, request: Request, _: Admin) -> Settled:
    """The tool is lost: its deposit goes to the library's keeper."""
    posted = service.declare_lost(node_of(request), loan_id)
    return Settled(loan=loan_id, transfer_id=posted.transfer_id if posted else None)
