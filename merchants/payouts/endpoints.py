"""The payouts API (JSON, under /api/v1): a merchant's bank details, signed on the device,
and the treasurer's SEPA transfer batches. Thin handlers over service.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Request, Response

from ledger.signing import SignedOrder
from members.access import AnyMember, Treasurer, WalletHolder, node_of
from members.errors import BAD_SIGNATURE_ENCODING
from merchants import service as reconversion
from merchants.payouts import service
from merchants.payouts.errors import DETAILS_HIDDEN
from merchants.payouts.schemas import (
    ApartOut,
    BatchCreate,
    BatchOut,
    BatchPaid,
    HistoryOut,
    ItemOut,
    QueueOut,
    ReadyOut,
    SignedDetailsOut,
)
from web.pages import PathName
from web.schemas import SignedOrderIn

if TYPE_CHECKING:
    from runtime.node import Node

router = APIRouter(prefix="/api/v1")
BatchId = Annotated[int, Path(ge=1, le=2**53)]
# Who reads a member's details masked (the last 4 characters only).
MASKED_READERS = frozenset({"admin", "office"})


def details_out(found: service.Details, whole: bool = True) -> SignedDetailsOut:
    return SignedDetailsOut(
        member=found.member,
        version=found.version,
        iban=found.iban if whole else None,
        iban_masked=found.masked_iban,
        bic=found.bic,
        holder=found.holder,
        key_id=found.key_id,
        created_ms=found.created_ms,
        statement=service.statement_of(found),
    )


def history_out(node: Node, member_id: str) -> HistoryOut:
    versions = service.history(node, member_id)
    return HistoryOut(
        current=details_out(versions[0]) if versions else None,
        history=[details_out(v) for v in versions],
    )


def batch_out(found: service.Batch) -> BatchOut:
    return BatchOut(
        id=found.id,
        status=found.status,
        message_id=found.message_id,
        total=found.total,
        count=found.count,
        created_by=found.created_by,
        created_ms=found.created_ms,
        bank_ref=found.bank_ref,
        decided_by=found.decided_by,
        decided_ms=found.decided_ms,
        items=[ItemOut(**vars(i)) for i in found.items],
        file=f"/api/v1/treasury/payout-batches/{found.id}/file",
    )


# -- a merchant's bank details -----------------------------------------------------------------


@router.get("/me/bank-details", response_model=HistoryOut, tags=["payouts"])
def my_details(request: Request, member: WalletHolder) -> HistoryOut:
    """Your bank account for reconversions, and every version before it."""
    reconversion.may_reconvert(node_of(request).settings, member)
    return history_out(node_of(request), member.id)


@router.post("/me/bank-details", status_code=201, response_model=SignedDetailsOut, tags=["payouts"])
def record_details(body: SignedOrderIn, request: Request, member: WalletHolder) -> SignedDetailsOut:
    """Record (or change) your bank account: a `bank_details` statement signed by one of your
    device keys, with `member` (you), `iban`, `bic`, `holder` and `previous` (the version
    it replaces, 0 for the first). Nothing is overwritten: each change is a new version."""
    try:
        envelope = SignedOrder.from_json(body.model_dump())
    except ValueError:
        raise BAD_SIGNATURE_ENCODING() from None
    return details_out(service.record_details(node_of(request), member, envelope))


@router.get("/members/{member_id}/bank-details", response_model=HistoryOut, tags=["payouts"])
def member_details(request: Request, member_id: PathName, reader: AnyMember) -> HistoryOut:
    """A member's bank account: whole with its history for the treasurer (and the member);
    masked but the last 4 characters, current version only, for the admin and offices."""
    node = node_of(request)
    if reader.role == "treasurer" or reader.id == member_id:
        return history_out(node, member_id)
    if reader.role not in MASKED_READERS:
        raise DETAILS_HIDDEN()
    found = service.current_details(node, member_id)
    shown = None if found is None else details_out(found, whole=False)
    if shown is not None:
        shown.statement = {}
    return HistoryOut(current=shown, history=[])


# -- the treasurer's batches -------------------------------------------------------------------


@router.get("/treasury/payouts", response_model=QueueOut, tags=["treasury"])
def payouts(request: Request, treasurer: Treasurer) -> QueueOut:
    """Pending reconversions ready for a file (with their accounts), those apart with why,
    and the latest batches."""
    node = node_of(request)
    found = service.queue(node)
    return QueueOut(
        ready=[
            ReadyOut(
                reconversion_id=r.reconversion.id,
                member=r.reconversion.member,
                amount=r.reconversion.net,
                iban=r.details.iban,
                bic=r.details.bic,
                holder=r.details.holder,
            )
            for r in found.ready
        ],
        apart=[
            ApartOut(
                reconversion_id=a.reconversion.id,
                member=a.reconversion.member,
                amount=a.reconversion.net,
                why=a.why,
            )
            for a in found.apart
        ],
        batches=[batch_out(b) for b in service.batches(node)],
    )


@router.post(
    "/treasury/payout-batches", status_code=201, response_model=BatchOut, tags=["treasury"]
)
def make_batch(
    request: Request, response: Response, treasurer: Treasurer, body: BatchCreate | None = None
) -> BatchOut:
    """One SEPA credit-transfer file of every pending reconversion with bank details (or of
    those named). The same `id` sent again answers the batch it made, with status 200."""
    body = body or BatchCreate()
    made = service.make_batch(node_of(request), treasurer, body.id, body.reconversions)
    if made.replayed:
        response.status_code = 200
    return batch_out(made.batch)


@router.get("/treasury/payout-batches/{batch_id}", response_model=BatchOut, tags=["treasury"])
def batch(batch_id: BatchId, request: Request, treasurer: Treasurer) -> BatchOut:
    return batch_out(service.find_batch(node_of(request), batch_id))


@router.get(
    "/treasury/payout-batches/{batch_id}/file",
    tags=["treasury"],
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def batch_file(batch_id: BatchId, request: Request, treasurer: Treasurer) -> Response:
    """The pain.001.001.03 file, the same bytes each time, to import at the bank."""
    name, xml = service.batch_file(node_of(request), batch_id)
    return Response(
        xml,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/treasury/payout-batches/{batch_id}/paid", response_model=BatchOut, tags=["treasury"])
def batch_paid(
    batch_id: BatchId, body: BatchPaid, request: Request, treasurer: Treasurer
) -> BatchOut:
    """The bank executed the file: each of its reconversions is marked paid with this
    reference, once (sent again with the same reference: the same answer)."""
    node = node_of(request)
    service.pay_batch(node, treasurer, batch_id, body.bank_ref)
    return batch_out(service.find_batch(node, batch_id))


@router.post(
    "/treasury/payout-batches/{batch_id}/cancelled", response_model=BatchOut, tags=["treasury"]
)
def batch_cancelled(batch_id: BatchId, request: Request, treasurer: Treasurer) -> BatchOut:
    """Before it is paid: its reconversions go back to the queue."""
    return batch_out(service.cancel_batch(node_of(request), treasurer, batch_id))
