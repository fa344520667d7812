"""The paper notes' pages: what a note's QR code opens (`/n/<series>/<serial>`: is it good?
and, for a merchant, "Déposer ce billet", signed on the device by `web/static/notes.js`), the
treasurer's series (`/notes`: print, send to an office, void, download the sheets) and the
office's notes (`/notes/office`: sell, take the cash to the bank). Plain forms otherwise.

Each form posts to its page's own address: a refusal shows the page again with the reason,
a success redirects to the page saying what was done (a reload sends nothing again).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ledger.errors import LedgerError
from ledger.operations import DENOMINATIONS, MAX_SERIES_SIZE
from members.access import MaybeMember, node_of, signed_in
from members.errors import BAD_FORM
from pos.notes import service
from pos.notes.errors import BAD_SERIALS, BAD_VALID_UNTIL
from web.i18n import gettext_for
from web.pages import (
    Text,
    done,
    number_format,
    page,
    page_money,
    public_origin,
    say,
    say_counted,
    typed_euros,
    when,
)
from web.refusals import Refusal, refusal_of

router = APIRouter(include_in_schema=False)

# What a note's page says of it, by state (msgids, French in notes.po).
VERDICTS = {
    "circulation": "Genuine note, in circulation: it is worth {amount}.",
    "deposited": "Genuine note, but it was already deposited ({when}): it is no longer valid. "
    "Do not accept it.",
    "void": "This note was cancelled by the association ({when}): it is no longer valid. "
    "Do not accept it.",
    "stock": "Genuine note, but it was never sold: it is still in the association's stock. "
    "Do not accept it.",
    "office": "Genuine note, but it was never sold: it is still at the exchange office "
    "{office}. Do not accept it.",
}
# What the deposit script may say (msgids).
DEPOSIT_MESSAGES = {
    "signing": "Signing the deposit on this device…",
    "sending": "Sending…",
    "done": "Note deposited: {amount} credited to your wallet.",
    "noKey": "This device has no key to sign with: use it to sign first.",
    "keyMade": "This device can now sign your deposits.",
}


def _number(text: str) -> int:
    """A serial typed in a form (BAD_SERIALS names the series' range when it is known)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not 0 < len(text) <= 5:
        raise BAD_SERIALS(count=MAX_SERIES_SIZE)
    return int(text)


# -- a note's own page: what its QR code opens -------------------------------------------------


@router.get("/n/{series}/{serial}")
def note(
    series: str,
    serial: str,
    request: Request,
    p: MaybeMember,
    d: Annotated[str, Query(max_length=20)] = "",
    s: Annotated[str, Query(max_length=200)] = "",
    e: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Is this note good? Said in plain words to anyone; a merchant may deposit it."""
    node = node_of(request)
    query = {k: v for k, v in {"d": d, "s": s, "e": e}.items() if v is not None}
    try:
        found = service.read_note(node, series, serial, query)
    except Refusal as refusal:
        return page(
            request,
            "notes/note.html",
            status=refusal.status,
            note=None,
            refused=refusal.text(request),
        )
    member = p.member if p is not None else None
    can_deposit = member is not None and member.role == "merchant"
    link = f"{public_origin(request)}/n/{series}/{serial}?{urlencode(query)}"
    tr = gettext_for(request)
    return page(
        request,
        "notes/note.html",
        note=found,
        verdict=_verdict(request, found),
        good=found.state == "circulation",
        can_deposit=can_deposit and found.state == "circulation",
        data={
            "link": link,
            "member": member.id if member else None,
            "series": found.series.id,
            "serial": found.serial,
            "denomination": found.denomination,
            "ref": found.ref,
            "currency": node.ledger.chart.local,
            **number_format(request),
            "label": say(request, "Browser"),
            "messages": {k: tr.gettext(v) for k, v in DEPOSIT_MESSAGES.items()},
        },
    )


def _verdict(request: Request, found: service.Note) -> str:
    moved = when(request, found.moved_ms) if found.moved_ms else ""
    return say(
        request,
        VERDICTS[found.state],
        amount=page_money(request, found.denomination),
        when=moved,
        office=found.office or "",
    )


# -- the treasurer -----------------------------------------------------------------------------


@router.get("/notes")
def treasury(
    request: Request,
    p: MaybeMember,
    made: Annotated[str | None, Query(max_length=8)] = None,
    sent: Annotated[int | None, Query(ge=0, le=10_000)] = None,
    voided: Annotated[int | None, Query(ge=0, le=10_000)] = None,
) -> Response:
    """Every series and where its notes are; the forms to print, send and void."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    flash = None
    if made:
        flash = say(request, "Series {series} printed: its notes are in the stock.", series=made)
    elif sent is not None:
        flash = say_counted(
            request, "{n} note sent to the office.", "{n} notes sent to the office.", sent
        )
    elif voided is not None:
        flash = say_counted(request, "{n} note voided.", "{n} notes voided.", voided)
    return _treasury_page(request, flash=flash)


def _treasury_page(
    request: Request,
    *,
    status: int = 200,
    flash: str | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    node = node_of(request)
    return page(
        request,
        "notes/treasury.html",
        status=status,
        summaries=service.summaries(node),
        offices=service.offices(node),
        denominations=DENOMINATIONS,
        when=lambda ms: when(request, ms),
        typed=typed or {},
        flash=flash,
    )


@router.post("/notes")
def treasury_form(
    request: Request,
    p: MaybeMember,
    action: Text = "",
    series: Text = "",
    denomination: Text = "",
    count: Text = "",
    valid_until: Text = "",
    first: Text = "",
    last: Text = "",
    office: Text = "",
    reason: Text = "",
) -> Response:
    """One of the page's forms: `action` create (series, denomination in cents, count,
    valid_until), dispatch (series, first, last, office) or void (series, first, last,
    reason)."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    node = node_of(request)
    typed = {"form": action, "series": series, "first": first, "last": last}
    try:
        if action == "create":
            typed_cents = denomination.isascii() and denomination.isdigit()
            cents = int(denomination) if typed_cents and len(denomination) <= 9 else 0
            made = service.create_series(
                node, treasurer, series, cents, _count(count), _day(valid_until)
            )
            return done("/notes", made=made.id)
        if action == "dispatch":
            moved = service.dispatch(node, treasurer, series, _number(first), _number(last), office)
            return done("/notes", sent=moved.count)
        if action == "void":
            moved = service.void(node, treasurer, series, _number(first), _number(last), reason)
            return done("/notes", voided=moved.count)
        raise BAD_FORM()
    except (Refusal, LedgerError) as exc:
        refusal = _refusal(exc)
        return _treasury_page(
            request, status=refusal.status, flash=refusal.text(request), typed=typed
        )


def _refusal(exc: Refusal | LedgerError) -> Refusal:
    return refusal_of(exc) if isinstance(exc, LedgerError) else exc


def _count(text: str) -> int:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0


def _day(text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BAD_VALID_UNTIL() from None


# -- the exchange office -----------------------------------------------------------------------


@router.get("/notes/office")
def office(
    request: Request,
    p: MaybeMember,
    sold: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    amount: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    notes: Annotated[str | None, Query(max_length=40)] = None,
    deposited: Annotated[int | None, Query(ge=0, le=2**53)] = None,
) -> Response:
    """The office's notes by series; the forms to record a sale and a deposit."""
    operator = signed_in(request, p, "office")
    if isinstance(operator, Response):
        return operator
    flash = None
    if sold is not None and amount is not None:
        flash = say_counted(
            request,
            "{n} note sold ({notes}): take {amount} in cash.",
            "{n} notes sold ({notes}): take {amount} in cash.",
            sold,
            notes=notes or "",
            amount=page_money(request, amount, "EUR"),
        )
    elif deposited is not None:
        flash = say(
            request,
            "Deposit of {amount} to the paper reserve recorded.",
            amount=page_money(request, deposited, "EUR"),
        )
    return _office_page(request, operator, flash=flash)


def _office_page(
    request: Request,
    operator: Any,
    *,
    status: int = 200,
    flash: str | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    return page(
        request,
        "notes/office.html",
        status=status,
        held=service.office_notes(node_of(request), operator),
        deposit_id=str(uuid.uuid4()),
        typed=typed or {},
        flash=flash,
    )


@router.post("/notes/office")
def office_form(
    request: Request,
    p: MaybeMember,
    action: Text = "",
    series: Text = "",
    first: Text = "",
    last: Text = "",
    id: Text = "",
    amount: Text = "",
    slip_ref: Text = "",
) -> Response:
    """`action` sell (series, first, last: the notes handed over) or deposit (id, amount
    in euros, slip_ref: the notes' cash taken to the bank)."""
    operator = signed_in(request, p, "office")
    if isinstance(operator, Response):
        return operator
    node = node_of(request)
    try:
        if action == "sell":
            last_serial = _number(last) if last.strip() else _number(first)
            moved = service.sell(node, operator, series, _number(first), last_serial)
            span = f"{moved.series}-{moved.first}" + (
                f"…{moved.last}" if moved.last != moved.first else ""
            )
            return done("/notes/office", sold=moved.count, amount=moved.amount, notes=span)
        if action == "deposit":
            cents = typed_euros(request, amount)
            service.deposit_note_cash(node, operator, id, cents, slip_ref)
            return done("/notes/office", deposited=cents)
        raise BAD_FORM()
    except (Refusal, LedgerError) as exc:
        refusal = _refusal(exc)
        typed = {"form": action, "series": series, "first": first, "last": last}
        typed |= {"amount": amount, "slip_ref": slip_ref}
        return _office_page(
            request, operator, status=refusal.status, flash=refusal.text(request), typed=typed
        )
