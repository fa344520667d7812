"""The reconversion API (JSON, under /api/v1): a member's quote and requests, and the
treasurer's payout queue. Thin handlers over service.py."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ledger.signing import SignedOrder
from members.access import Member, Treasurer, WalletHolder, node_of
from members.errors import BAD_SIGNATURE_ENCODING
from merchants import service
from merchants.schemas import (
    PayoutDone,
    QuoteOut,
    ReconversionOut,
    Rejection,
    TreasuryReconversionOut,
)
from web.schemas import SignedOrderIn

router = APIRouter(prefix="/api/v1", tags=["reconversion"])
ReconversionId = Annotated[int, Path(ge=1, le=2**53)]


def _reconverter(request: Request, member: WalletHolder) -> Member:
    service.may_reconvert(node_of(request).settings, member)
    return member


# Merchants; residents too where the association allows it.
Reconverter = Annotated[Member, Depends(_reconverter)]


def reconversion_out(found: service.Reconversion, replayed: bool = False) -> ReconversionOut:
    return ReconversionOut(
        id=found.id,
        member=found.member,
        amount=found.amount,
        fee=found.fee,
        cause_fee=found.cause_fee,
        net=found.net,
        status=found.status,
        redemption_id=found.redemption_id,
        created_ms=found.created_ms,
        bank_ref=found.bank_ref,
        reason=found.reason,
        decision_id=found.decision_id,
        decided_ms=found.decided_ms,
        replayed=replayed,
    )


def treasury_out(found: service.Reconversion) -> TreasuryReconversionOut:
    return TreasuryReconversionOut(
        **reconversion_out(found).model_dump(),
        display_name=found.display_name,
        trade_name=found.trade_name,
        decided_by=found.decided_by,
    )


@router.get("/reconversions/quote", response_model=QuoteOut)
def quote(
    request: Request,
    member: Reconverter,
    amount: Annotated[int, Query(ge=1, le=2**53, description="Units to reconvert, in cents.")],
) -> QuoteOut:
    """The fee and the euros paid out for reconverting `amount`: sign exactly these."""
    node = node_of(request)
    settings = node.settings
    found = service.quote(settings, amount)
    return QuoteOut(
        amount=found.amount,
        fee=found.fee,
        cause_fee=found.cause_fee,
        association_fee=found.association_fee,
        net=found.net,
        currency=node.ledger.chart.local,
        fee_bps=settings.reconversion_fee_bps,
        cause_share=settings.reconversion_cause_share,
        cause_name=settings.cause_name,
    )


@router.post("/reconversions", status_code=201, response_model=ReconversionOut)
def request_reconversion(
    body: SignedOrderIn, request: Request, response: Response, member: Reconverter
) -> ReconversionOut:
    """Reconvert units to euros with a `redemption` order signed by one of your device keys,
    its `fee` and `cause_fee` those of the quote. The units leave your wallet at once; the
    treasurer then pays the euros. The same order sent again answers the first result."""
    try:
        envelope = SignedOrder.from_json(body.model_dump())
    except ValueError:
        raise BAD_SIGNATURE_ENCODING() from None
    found, replayed = service.request_reconversion(node_of(request), member, envelope)
    if replayed:
        response.status_code = 200
    return reconversion_out(found, replayed)


@router.get("/reconversions", response_model=list[ReconversionOut])
def my_reconversions(request: Request, member: WalletHolder) -> list[ReconversionOut]:
    """Your reconversion requests, newest first."""
    return [reconversion_out(r) for r in service.reconversions_of(node_of(request), member)]


@router.get(
    "/treasury/reconversions", response_model=list[TreasuryReconversionOut], tags=["treasury"]
)
def treasury_reconversions(
    request: Request,
    treasurer: Treasurer,
    status: Literal["pending", "paid", "rejected"] = "pending",
) -> list[TreasuryReconversionOut]:
    """The requests in one state: pending ones oldest first (the payout queue)."""
    return [treasury_out(r) for r in service.reconversions_in(node_of(request), status)]


@router.post(
    "/treasury/reconversions/{reconversion_id}/paid",
    response_model=TreasuryReconversionOut,
    tags=["treasury"],
)
def paid(
    reconversion_id: ReconversionId, body: PayoutDone, request: Request, treasurer: Treasurer
) -> TreasuryReconversionOut:
    """The euros were sent, with this bank reference: records the payout (once)."""
    found = service.mark_paid(node_of(request), treasurer, reconversion_id, body.bank_ref)
    return treasury_out(found)


@router.post(
    "/treasury/reconversions/{reconversion_id}/rejected",
    response_model=TreasuryReconversionOut,
    tags=["treasury"],
)
def rejected(
    reconversion_id: ReconversionId, body: Rejection, request: Request, treasurer: Treasurer
) -> TreasuryReconversionOut:
    """Refuse the request: the units (fee included) go back to the member's wallet."""
    found = service.reject(node_of(request), treasurer, reconversion_id, body.reason)
    return treasury_out(found)
