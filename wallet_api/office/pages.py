"""The exchange office's page (`/office`) and the treasurer's view of the offices
(`/treasurer/offices`). Plain forms, no script needed.

Each form posts to its page's own address: a refusal shows the page again with what was
typed and the reason (the language switch still leads to the page), a success redirects
to the page naming what was done (so a reload does not send the form again). The office's
forms also carry a request id made when the page was drawn: a double click or a resent
form records the cash once.
"""

from __future__ import annotations

import uuid
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response

from members.access import MaybeMember, node_of, signed_in
from members.errors import BAD_FORM
from wallet_api.office import service
from wallet_api.office.errors import UNKNOWN_DEPOSIT
from web.pages import (
    MAX_ID_DIGITS,
    DoneId,
    Text,
    day,
    done,
    page,
    page_money,
    say,
    typed_euros,
    when,
)
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)


# -- the office ----------------------------------------------------------------------------


@router.get("/office")
def office(
    request: Request, p: MaybeMember, cash_in: DoneId = None, deposit: DoneId = None
) -> Response:
    """The till, the forms to record a cash-in and a deposit, the latest entries."""
    operator = signed_in(request, p, "office")
    if isinstance(operator, Response):
        return operator
    view = service.office_view(node_of(request), operator)
    flash = None
    credited = next((c for c in view.cash_ins if c.transfer_id == cash_in), None)
    if credited is not None:
        name = service.find_wallet_member(node_of(request), credited.member).display_name
        flash = say(
            request,
            "Credited {amount} to {name} ({member}).",
            amount=page_money(request, credited.amount),
            name=name,
            member=credited.member,
        )
    deposited = next((d for d in view.deposits if d.transfer_id == deposit), None)
    if deposited is not None:
        flash = say(
            request,
            "Deposit of {amount} recorded (slip {slip}).",
            amount=page_money(request, deposited.amount, "EUR"),
            slip=deposited.slip_ref,
        )
    return _office_page(request, view, flash=flash)


def _office_page(
    request: Request,
    view: service.OfficeView,
    *,
    status: int = 200,
    flash: str | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    return page(
        request,
        "office/office.html",
        status=status,
        view=view,
        when=lambda ms: when(request, ms),
        cash_in_id=str(uuid.uuid4()),
        deposit_id=str(uuid.uuid4()),
        typed=typed or {},
        flash=flash,
    )


@router.post("/office")
def record(
    request: Request,
    p: MaybeMember,
    action: Text = "",
    id: Text = "",
    member: Text = "",
    amount: Text = "",
    slip_ref: Text = "",
) -> Response:
    """One of the page's forms: `action` "cash-in" (id, member, amount in euros) or
    "deposit" (id, amount in euros, slip_ref)."""
    operator = signed_in(request, p, "office")
    if isinstance(operator, Response):
        return operator
    node = node_of(request)
    try:
        cents = typed_euros(request, amount)
        if action == "cash-in":
            credited = service.cash_in(node, operator, id, member, cents)
            return done("/office", cash_in=credited.transfer_id)
        if action == "deposit":
            deposited = service.deposit(node, operator, id, cents, slip_ref)
            return done("/office", deposit=deposited.transfer_id)
        raise BAD_FORM()
    except Refusal as refusal:
        typed = {"form": action, "member": member, "amount": amount, "slip_ref": slip_ref}
        view = service.office_view(node, operator)
        return _office_page(
            request, view, status=refusal.status, flash=refusal.text(request), typed=typed
        )


# -- the treasurer's view of the offices ---------------------------------------------------


@router.get("/treasurer/offices")
def offices(
    request: Request, p: MaybeMember, reconciled: DoneId = None, deposit: DoneId = None
) -> Response:
    """Every office's till and takings, a form per deposit still to reconcile, the latest
    deposits and how each was reconciled; `deposit`: one deposit shown first (the
    reconciliation's page links here)."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    found = service.find_deposit(node_of(request), reconciled) if reconciled else None
    flash = None
    if found is not None and found.bank_ref is not None:
        flash = say(
            request,
            "Deposit {id} reconciled with {bank_ref}.",
            id=found.transfer_id,
            bank_ref=found.bank_ref,
        )
    shown = service.find_deposit(node_of(request), deposit) if deposit else None
    return _offices_page(request, flash=flash, shown=shown)


def _offices_page(
    request: Request,
    *,
    status: int = 200,
    flash: str | None = None,
    shown: service.Deposit | None = None,
) -> Response:
    return page(
        request,
        "treasurer/offices.html",
        status=status,
        offices=service.offices(node_of(request)),
        shown=shown,
        when=lambda ms: when(request, ms),
        day=lambda iso: day(request, date.fromisoformat(iso)) if iso else "—",
        flash=flash,
    )


@router.post("/treasurer/offices")
def reconcile(
    request: Request, p: MaybeMember, transfer_id: Text = "", bank_ref: Text = ""
) -> Response:
    """A deposit's form: it is on the bank statement under `bank_ref` (recorded once)."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    try:
        if (
            not (transfer_id.isascii() and transfer_id.isdigit())
            or len(transfer_id) > MAX_ID_DIGITS
            or not 0 < int(transfer_id) <= 2**53
        ):
            raise UNKNOWN_DEPOSIT()
        found = service.reconcile(node_of(request), treasurer, int(transfer_id), bank_ref)
    except Refusal as refusal:
        return _offices_page(request, status=refusal.status, flash=refusal.text(request))
    return done("/treasurer/offices", reconciled=found.transfer_id)
