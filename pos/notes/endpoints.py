"""The paper notes' API (JSON, under /api/v1/notes): the treasurer's series, dispatches,
voids and sheets; the office's notes, sales and cash deposits; anyone's check of a note;
a merchant's deposit. Thin handlers over service.py. (The pages: `pages.py`.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from ledger.signing import SignedOrder
from members.access import Merchant, OfficeOperator, Treasurer, node_of
from members.errors import BAD_SIGNATURE_ENCODING
from pos.notes import service
from pos.notes.schemas import (
    DispatchIn,
    HoldingOut,
    LinkIn,
    MovedOut,
    NoteCashDepositIn,
    NoteCashDepositOut,
    NoteDepositIn,
    NoteDepositOut,
    NoteOut,
    OfficeNotesOut,
    RangeIn,
    SeriesIn,
    SeriesOut,
    VoidIn,
)
from web.pages import public_origin

router = APIRouter(prefix="/api/v1/notes", tags=["notes"])
SeriesId = Annotated[str, Path(min_length=1, max_length=8)]
SerialQuery = Annotated[int | None, Query(ge=1, le=10_000)]
PDF: dict[int | str, dict[str, Any]] = {200: {"content": {"application/pdf": {}}}}


def series_out(found: service.SeriesSummary) -> SeriesOut:
    s = found.series
    return SeriesOut(
        series=s.id,
        denomination=s.denomination,
        count=s.count,
        valid_until=s.valid_until,
        state=s.state,
        created_ms=s.created_ms,
        stock=found.stock,
        offices=found.offices,
        circulation=found.circulation,
        deposited=found.deposited,
        void=found.void,
        next_in_stock=found.next_in_stock,
    )


def moved_out(moved: service.Moved) -> MovedOut:
    return MovedOut(
        series=moved.series,
        count=moved.count,
        amount=moved.amount,
        first=moved.first,
        last=moved.last,
    )


def note_out(request: Request, note: service.Note) -> NoteOut:
    return NoteOut(
        series=note.series.id,
        serial=note.serial,
        denomination=note.denomination,
        currency=node_of(request).ledger.chart.local,
        state=note.state,
        genuine=True,
        spendable=note.state == "circulation",
        sale=note.ref if note.state == "circulation" else None,
        moved_ms=note.moved_ms,
        valid_until=note.series.valid_until,
    )


# -- the treasurer -----------------------------------------------------------------------------


@router.get("/series", response_model=list[SeriesOut])
def series_list(request: Request, treasurer: Treasurer) -> list[SeriesOut]:
    """Every series, and how many of its notes are where."""
    return [series_out(s) for s in service.summaries(node_of(request))]


@router.post("/series", status_code=201, response_model=SeriesOut)
def create_series(body: SeriesIn, request: Request, treasurer: Treasurer) -> SeriesOut:
    """Print a series: its notes go into the printed stock (a `note_print` transfer)."""
    node = node_of(request)
    made = service.create_series(
        node, treasurer, body.series, body.denomination, body.count, body.valid_until
    )
    return series_out(service.summary(node, made))


@router.get("/series/{series}/sheet.pdf", response_class=Response, responses=PDF)
async def sheet(
    series: SeriesId,
    request: Request,
    treasurer: Treasurer,
    first: SerialQuery = None,
    last: SerialQuery = None,
) -> Response:
    """The notes of the series (or serials `first` to `last`) on A4 sheets, to print."""
    node, origin = node_of(request), public_origin(request)
    pdf = await run_in_threadpool(service.print_sheet, node, origin, series, first, last)
    name = f"notes-{series.upper()}.pdf"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(pdf, media_type="application/pdf", headers=headers)


@router.post("/dispatches", status_code=201, response_model=MovedOut)
def dispatch(body: DispatchIn, request: Request, treasurer: Treasurer) -> MovedOut:
    """Send notes `first` to `last` of the printed stock to an exchange office."""
    moved = service.dispatch(
        node_of(request), treasurer, body.series, body.first, body.last, body.office
    )
    return moved_out(moved)


@router.post("/voids", status_code=201, response_model=MovedOut)
def void(body: VoidIn, request: Request, treasurer: Treasurer) -> MovedOut:
    """Void notes lost: those not deposited nor voided yet among `first` to `last`."""
    moved = service.void(
        node_of(request), treasurer, body.series, body.first, body.last, body.reason
    )
    return moved_out(moved)


# -- the exchange office -----------------------------------------------------------------------


@router.get("/office", response_model=OfficeNotesOut)
def office(request: Request, operator: OfficeOperator) -> OfficeNotesOut:
    """The notes your office holds, and the cash of the notes it sold."""
    held = service.office_notes(node_of(request), operator)
    return OfficeNotesOut(
        office=held.office,
        till=held.till,
        note_cash=held.note_cash,
        holdings=[
            HoldingOut(series=h.series, denomination=h.denomination, count=h.count, runs=h.runs)
            for h in held.holdings
        ],
    )


@router.post("/sales", status_code=201, response_model=MovedOut)
def sell(body: RangeIn, request: Request, operator: OfficeOperator) -> MovedOut:
    """Notes `first` to `last` sold for cash: take their value in euros."""
    moved = service.sell(node_of(request), operator, body.series, body.first, body.last)
    return moved_out(moved)


@router.post("/cash-deposits", status_code=201, response_model=NoteCashDepositOut)
def cash_deposit(
    body: NoteCashDepositIn, request: Request, operator: OfficeOperator
) -> NoteCashDepositOut:
    """The notes' cash taken from the till to the paper reserve's bank account. The same
    `id` again records it once."""
    node = node_of(request)
    done = service.deposit_note_cash(node, operator, body.id, body.amount, body.slip_ref)
    return NoteCashDepositOut(transfer_id=done, amount=body.amount)


# -- anyone: is this note good? ----------------------------------------------------------------


@router.post("/scan", response_model=NoteOut)
def scan(body: LinkIn, request: Request) -> NoteOut:
    """What a scanned code says of its note: made by this node? in circulation, already
    deposited, void? Each way a code can be wrong is refused with its own reason."""
    note = service.read_link(node_of(request), public_origin(request), body.link)
    return note_out(request, note)


@router.get("/{series}/{serial}", response_model=NoteOut)
def check(
    series: str,
    serial: str,
    request: Request,
    d: Annotated[str, Query(max_length=20)] = "",
    s: Annotated[str, Query(max_length=200)] = "",
    e: Annotated[str | None, Query(max_length=20)] = None,
) -> NoteOut:
    """The same for the address of a note's page (`/n/<series>/<serial>?d=&s=`)."""
    query = {k: v for k, v in {"d": d, "s": s, "e": e}.items() if v is not None}
    note = service.read_note(node_of(request), series, serial, query)
    return note_out(request, note)


# -- a merchant --------------------------------------------------------------------------------


@router.post("/deposits", status_code=201, response_model=NoteDepositOut)
def deposit(
    body: NoteDepositIn, request: Request, response: Response, merchant: Merchant
) -> NoteDepositOut:
    """Deposit a note you took into your wallet: a `note_deposit` order (ref: the note's
    sale) signed by your device's key. Once per note: a second deposit is refused."""
    try:
        envelope = SignedOrder.from_json(body.model_dump(include={"order", "sig"}))
    except ValueError:
        raise BAD_SIGNATURE_ENCODING() from None
    node = node_of(request)
    done = service.deposit(node, merchant, public_origin(request), body.link, envelope)
    if done.replayed:
        response.status_code = 200
    return NoteDepositOut(
        transfer_id=done.transfer_id,
        series=done.note.series.id,
        serial=done.note.serial,
        amount=done.note.denomination,
        created_ms=done.created_ms,
        replayed=done.replayed,
    )
