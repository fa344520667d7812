"""The exchange office's API (JSON, under /api/v1): cash-ins, deposits, and the treasurer's
view of every office with the reconciliation of deposits. Thin handlers over service.py."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from members.access import OfficeOperator, Treasurer, node_of
from wallet_api.office import service
from wallet_api.office.schemas import (
    CashInCreate,
    CashInOut,
    DepositCreate,
    DepositOut,
    OfficeOut,
    OfficeSummaryOut,
    Reconciliation,
)

router = APIRouter(prefix="/api/v1", tags=["office"])


@router.get("/office", response_model=OfficeOut)
def office(request: Request, operator: OfficeOperator) -> OfficeOut:
    """Your office's till (cents of euro) and its recent cash-ins and deposits."""
    view = service.office_view(node_of(request), operator)
    return OfficeOut(
        office=view.office,
        till=view.till,
        cash_ins=[CashInOut(**asdict(c)) for c in view.cash_ins],
        deposits=[deposit_out(d) for d in view.deposits],
    )


@router.post("/office/cash-ins", status_code=201, response_model=CashInOut)
def cash_in(
    body: CashInCreate, request: Request, response: Response, operator: OfficeOperator
) -> CashInOut:
    """Cash received for a member: the member is credited as many units, signed by your
    office's key. The same `id` sent again answers the first result, with status 200."""
    done = service.cash_in(node_of(request), operator, body.id, body.member, body.amount)
    if done.replayed:
        response.status_code = 200
    return CashInOut(**asdict(done))


@router.post("/office/deposits", status_code=201, response_model=DepositOut)
def deposit(
    body: DepositCreate, request: Request, response: Response, operator: OfficeOperator
) -> DepositOut:
    """Cash taken from your till to the bank (never more than the till holds)."""
    done = service.deposit(node_of(request), operator, body.id, body.amount, body.slip_ref)
    if done.replayed:
        response.status_code = 200
    return deposit_out(done)


@router.get("/treasury/offices", response_model=list[OfficeSummaryOut], tags=["treasury"])
def offices(request: Request, treasurer: Treasurer) -> list[OfficeSummaryOut]:
    """Every office: till, cash taken in, deposits, the deposits not yet reconciled (neither
    marked by hand nor matched to a line of an imported statement), and the latest ones."""
    return [_summary(s) for s in service.offices(node_of(request))]


def _summary(summary: service.OfficeSummary) -> OfficeSummaryOut:
    return OfficeSummaryOut(
        office=summary.office,
        till=summary.till,
        cash_ins_total=summary.cash_ins_total,
        cash_ins_count=summary.cash_ins_count,
        deposits_total=summary.deposits_total,
        deposits_count=summary.deposits_count,
        unreconciled_total=summary.unreconciled_total,
        unreconciled=[deposit_out(d) for d in summary.unreconciled],
        recent_deposits=[deposit_out(d) for d in summary.recent],
    )


def deposit_out(deposit: service.Deposit) -> DepositOut:
    return DepositOut(**asdict(deposit), reconciled=deposit.reconciled)


@router.post(
    "/treasury/deposits/{transfer_id}/reconciled", response_model=DepositOut, tags=["treasury"]
)
def reconciled(
    transfer_id: Annotated[int, Path(ge=1, le=2**53)],
    body: Reconciliation,
    request: Request,
    treasurer: Treasurer,
) -> DepositOut:
    """The deposit is on the bank statement, under `bank_ref`. Recorded once, and refused
    (409) for a deposit already reconciled: by hand, or matched to a statement's line."""
    done = service.reconcile(node_of(request), treasurer, transfer_id, body.bank_ref)
    return deposit_out(done)
