"""The payouts pages: a merchant's bank details (`/bank-details`, whose script signs them on
the device, `web/static/payouts.js`), the treasurer's transfer files (`/treasurer/payouts`,
plain forms) and a member's history of bank details for the treasurer."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from members import service as members
from members.access import MaybeMember, node_of, signed_in
from members.errors import BAD_FORM
from merchants import service as reconversion
from merchants.payouts import service
from web.pages import MAX_ID_DIGITS, DoneId, PathId, PathName, Text, done, page, say, when
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)
BATCH_LABELS = {
    "unpaid": "Waiting for the bank",
    "paid": "Sent by the bank",
    "cancelled": "Batch cancelled",
}


@router.get("/bank-details")
def bank_details(request: Request, p: MaybeMember, saved: DoneId = None) -> Response:
    """The form (signed on this device) and every version recorded so far."""
    member = signed_in(request, p, "merchant", "resident")
    if isinstance(member, Response):
        return member
    node = node_of(request)
    reconversion.may_reconvert(node.settings, member)
    versions = service.history(node, member.id)
    return page(
        request,
        "payouts/bank_details.html",
        current=versions[0] if versions else None,
        versions=versions,
        when=lambda ms: when(request, ms),
        flash=say(request, "Bank details recorded (version {version}).", version=saved)
        if saved and versions and versions[0].version == saved
        else None,
    )


@router.get("/treasurer/bank-details/{member_id}")
def member_history(request: Request, p: MaybeMember, member_id: PathName) -> Response:
    """A member's bank details, every version, with the key that signed each."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    node = node_of(request)
    found = members.get_member(node, member_id)
    return page(
        request,
        "payouts/history.html",
        member=found,
        versions=service.history(node, member_id),
        when=lambda ms: when(request, ms),
    )


@router.get("/treasurer/payouts")
def payouts(
    request: Request,
    p: MaybeMember,
    made: DoneId = None,
    paid: DoneId = None,
    cancelled: DoneId = None,
    reconversion: DoneId = None,
) -> Response:
    """The reconversions ready for a file, those apart (why), and the batches; with
    `reconversion` (the reconciliation's link from a bank line), which file paid it."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    flash = None
    if reconversion:
        flash = _which_file(request, reconversion)
    elif made:
        flash = say(
            request, "Transfer file {id} made: download it, import it at the bank.", id=made
        )
    elif paid:
        flash = say(request, "Batch {id} marked paid.", id=paid)
    elif cancelled:
        flash = say(request, "Batch {id} cancelled: its reconversions wait again.", id=cancelled)
    return _payouts_page(request, flash=flash)


def _which_file(request: Request, reconversion_id: int) -> str:
    holding = service.live_batch_of(node_of(request), reconversion_id)
    if holding is None:
        return say(request, "Reconversion {id} is in no transfer file.", id=reconversion_id)
    return say(
        request, "Reconversion {id} is in transfer file {batch}.", id=reconversion_id, batch=holding
    )


def _payouts_page(request: Request, *, status: int = 200, flash: str | None = None) -> Response:
    node = node_of(request)
    return page(
        request,
        "payouts/treasurer.html",
        status=status,
        queue=service.queue(node),
        batches=service.batches(node),
        batch_labels=BATCH_LABELS,
        request_id=uuid.uuid4().hex,  # this form's id: pressed twice, one file
        when=lambda ms: when(request, ms),
        flash=flash,
    )


# The reconversions the page showed ready, as typed (digits, read by `_ids`).
Shown = Annotated[list[str] | None, Form()]
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$")


@router.post("/treasurer/payouts")
def make_batch(
    request: Request, p: MaybeMember, request_id: Text = "", reconversion: Shown = None
) -> Response:
    """Make the transfer file of the reconversions the page showed ready (`reconversion`,
    repeated), once per form (`request_id`: the button pressed twice makes one file)."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    try:
        if request_id and not REQUEST_ID.match(request_id):
            raise BAD_FORM()
        made = service.make_batch(
            node_of(request), treasurer, request_id or None, _ids(reconversion)
        )
    except Refusal as refusal:
        return _payouts_page(request, status=refusal.status, flash=refusal.text(request))
    return done("/treasurer/payouts", made=made.batch.id)


def _ids(typed: list[str] | None) -> list[int] | None:
    if not typed:
        return None
    if not all(t.isdigit() and len(t) <= MAX_ID_DIGITS for t in typed):
        raise BAD_FORM()
    return [int(t) for t in typed]


@router.post("/treasurer/payouts/{batch_id}")
def decide(
    request: Request, p: MaybeMember, batch_id: PathId, decision: Text = "", bank_ref: Text = ""
) -> Response:
    """A batch's forms: `decision` "paid" (with the bank's `bank_ref`) or "cancelled"."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    node = node_of(request)
    try:
        if decision == "paid":
            service.pay_batch(node, treasurer, batch_id, bank_ref)
            return done("/treasurer/payouts", paid=batch_id)
        if decision == "cancelled":
            service.cancel_batch(node, treasurer, batch_id)
            return done("/treasurer/payouts", cancelled=batch_id)
        raise BAD_FORM()
    except Refusal as refusal:
        return _payouts_page(request, status=refusal.status, flash=refusal.text(request))
