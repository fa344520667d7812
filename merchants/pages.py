"""The merchants' pages: a shop's public page (`/shops/<slug>`, for anyone), the
reconversion page of a merchant (`/reconversion`, whose script signs the redemption on the
device, `web/static/reconversion.js`) and the treasurer's payout queue (`/treasurer`,
plain forms)."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_decimal
from fastapi import APIRouter, Request
from fastapi.responses import Response

from members import service as members
from members.access import MaybeMember, node_of, signed_in
from members.errors import BAD_FORM
from merchants import service
from merchants.errors import UNKNOWN_RECONVERSION
from merchants.payouts import service as payouts
from web.i18n import language_of
from web.pages import MAX_ID_DIGITS, DoneId, Text, done, number_format, page, say, when
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)
# How people read the state of a request (msgids, French in merchants.po).
STATUS_LABELS = {"pending": "Waiting for payment", "paid": "Paid", "rejected": "Rejected"}


@router.get("/shops/{slug}")
def shop(request: Request, p: MaybeMember, slug: str) -> Response:
    """A shop approved by the association: what it sells, where, and the way to pay it.
    Any other slug is as unknown as one never made (404)."""
    found = members.approved_shop(node_of(request), slug[:64].lower())
    return page(request, "merchants/shop.html", shop=found)


@router.get("/reconversion")
def reconversion(request: Request, p: MaybeMember) -> Response:
    """The quote as one types, the signed request, and the member's requests so far."""
    member = signed_in(request, p, "merchant", "resident")
    if isinstance(member, Response):
        return member
    node = node_of(request)
    settings = node.settings
    service.may_reconvert(settings, member)
    lang = language_of(request)
    rate = format_decimal(Decimal(settings.reconversion_fee_bps).scaleb(-2), locale=lang)
    return page(
        request,
        "merchants/reconversion.html",
        balance=node.ledger.balance(member.account),
        requests=service.reconversions_of(node, member),
        account=payouts.current_details(node, member.id),
        status_labels=STATUS_LABELS,
        when=lambda ms: when(request, ms),
        rate=rate,
        cause_share=settings.reconversion_cause_share,
        cause_name=settings.cause_name,
        max_amount=settings.max_amount,
        number=number_format(request),
    )


# -- the treasurer -------------------------------------------------------------------------


@router.get("/treasurer")
def treasurer(
    request: Request, p: MaybeMember, paid: DoneId = None, rejected: DoneId = None
) -> Response:
    """Pending reconversions with their "paid" and "reject" forms; the latest decisions."""
    found = signed_in(request, p, "treasurer")
    if isinstance(found, Response):
        return found
    node, flash = node_of(request), None
    asked = paid or rejected
    decided = service.find_reconversion(node, asked) if asked is not None else None
    if decided is not None and decided.status == "paid" and paid:
        flash = say(
            request,
            "Request {id} marked paid ({bank_ref}).",
            id=decided.id,
            bank_ref=decided.bank_ref,
        )
    elif decided is not None and decided.status == "rejected" and rejected:
        flash = say(request, "Request {id} rejected: the units went back.", id=decided.id)
    return _treasurer_page(request, flash=flash)


def _treasurer_page(request: Request, *, status: int = 200, flash: str | None = None) -> Response:
    node = node_of(request)
    queue = payouts.queue(node)
    return page(
        request,
        "treasurer/reconversions.html",
        status=status,
        pending=service.reconversions_in(node, "pending"),
        batched=queue.batched,
        accounts={r.reconversion.id: r.details for r in queue.ready},
        apart={a.reconversion.id: a.why for a in queue.apart},
        paid=service.reconversions_in(node, "paid", limit=20),
        rejected=service.reconversions_in(node, "rejected", limit=20),
        when=lambda ms: when(request, ms),
        flash=flash,
    )


@router.post("/treasurer")
def decide(
    request: Request,
    p: MaybeMember,
    reconversion_id: Text = "",
    decision: Text = "",
    bank_ref: Text = "",
    reason: Text = "",
) -> Response:
    """A pending request's forms: `decision` "paid" (with `bank_ref`: the euros were
    sent) or "rejected" (with `reason`: the units go back to the member)."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    node = node_of(request)
    try:
        if not (reconversion_id.isascii() and reconversion_id.isdigit()) or (
            len(reconversion_id) > MAX_ID_DIGITS or int(reconversion_id) > 2**53
        ):
            raise UNKNOWN_RECONVERSION()
        number = int(reconversion_id)
        if decision == "paid":
            return done("/treasurer", paid=service.mark_paid(node, treasurer, number, bank_ref).id)
        if decision == "rejected":
            return done("/treasurer", rejected=service.reject(node, treasurer, number, reason).id)
        raise BAD_FORM()
    except Refusal as refusal:
        return _treasurer_page(request, status=refusal.status, flash=refusal.text(request))
