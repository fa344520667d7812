"""The treasurer's reconciliation page, `/treasurer/reconciliation`: upload a statement (or
read Stripe's balance), see each account's lines matched and unmatched with totals, match a
line by hand with a note, undo a match. Plain forms; each posts to its own address and comes
back to the page naming what was done, or shows the page again with the refusal. A line the
bank booked for several movements (a whole transfer file) is matched to all of them at once,
and shown once with its movements under it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from audits.reconciliation import errors, service
from audits.reconciliation.parsed import MAX_BYTES
from audits.reconciliation.repository import ACCOUNTS
from members.access import MaybeMember, node_of, signed_in
from web.pages import MAX_ID_DIGITS, DoneId, Text, done, page, say
from web.refusals import Refusal

router = APIRouter(include_in_schema=False)
PATH = "/treasurer/reconciliation"
ACCOUNT_LABELS = {
    "reserve:digital": "Reserve (bank account)",
    "reserve:paper": "Paper notes' reserve (bank account)",
    "clearing:stripe": "Stripe balance",
}
# The ledger's kinds that move euros on these accounts, as the page names them (translated
# by the template); any other kind is shown as the ledger writes it.
MOVEMENT_KINDS = {
    "topup": "top-up",
    "cash_deposit": "cash deposit",
    "payout": "reconversion payout",
    "card_reversal": "card top-up reversed",
    "card_write_off": "card shortfall written off",
    "settlement": "Stripe payout to the bank",
    "note_sale": "paper notes sold",
    "note_deposit": "paper notes deposited",
    "correction": "correction",
}


def _account(text: str | None) -> str:
    return text if text in ACCOUNTS else "reserve:digital"


def _page(
    request: Request,
    account: str,
    *,
    status: int = 200,
    flash: str | None = None,
) -> Response:
    node = node_of(request)
    return page(
        request,
        "reconciliation/reconciliation.html",
        status=status,
        account=account,
        accounts=ACCOUNT_LABELS,
        kinds=MOVEMENT_KINDS,
        view=service.view(node, account),
        statements=service.statements(node, account),
        stripe_ready=bool(node.settings.stripe_secret_key),
        max_mb=MAX_BYTES // 1_000_000,
        confirm_at=service.confirm_at,
        flash=flash,
    )


@router.get(PATH)
def reconciliation(
    request: Request,
    p: MaybeMember,
    account: str | None = None,
    imported: DoneId = None,
    added: int | None = None,
    matched: DoneId = None,
    parts: DoneId = None,
    undone: DoneId = None,
) -> Response:
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    flash = None
    if imported is not None:
        flash = say(request, "Statement imported: {added} new lines.", added=max(added or 0, 0))
    elif matched is not None and (parts or 1) > 1:
        flash = say(request, "Matched by hand: the line books {count} movements.", count=parts)
    elif matched is not None:
        flash = say(request, "Matched by hand.")
    elif undone is not None:
        flash = say(request, "Match undone.")
    return _page(request, _account(account), flash=flash)


async def _upload(request: Request) -> tuple[bytes, str, str, str]:
    form = await request.form(max_files=1)
    upload = form.get("statement")
    if not isinstance(upload, UploadFile):
        raise errors.EMPTY_STATEMENT()
    data = await upload.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise errors.STATEMENT_TOO_LARGE(maximum=MAX_BYTES)
    fmt = str(form.get("format") or "auto")
    if fmt == "auto":
        fmt = service.guess_format(upload.filename or "", data)
    return data, fmt, str(form.get("account") or ""), (upload.filename or "")[:200]


@router.post(PATH)
async def upload(request: Request, p: MaybeMember) -> Response:
    """The upload form: `statement` (the file), `format` (auto, camt, csv, stripe-csv),
    `account` (empty: from the file)."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    account = "reserve:digital"
    try:
        data, fmt, chosen, name = await _upload(request)
        account = _account(chosen) if chosen else account
        done_ = await run_in_threadpool(
            service.import_statement,
            node_of(request),
            data,
            fmt,
            name=name,
            account=chosen or None,
            by=treasurer.id,
        )
    except Refusal as refusal:
        return _refused(request, account, refusal)
    return done(PATH, account=done_.account, imported=done_.statement_id, added=done_.added)


def _refused(request: Request, account: str, refusal: Refusal) -> Response:
    return _page(request, account, status=refusal.status, flash=refusal.text(request))


@router.post(PATH + "/stripe")
def read_stripe(request: Request, p: MaybeMember) -> Response:
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    try:
        done_ = service.import_stripe(node_of(request), by=treasurer.id)
    except Refusal as refusal:
        return _refused(request, "clearing:stripe", refusal)
    return done(PATH, account=done_.account, imported=done_.statement_id, added=done_.added)


def _id(text: str, refusal: Any) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_ID_DIGITS:
        raise refusal
    value = int(text)
    if not 0 < value <= 2**53:
        raise refusal
    return value


@router.post(PATH + "/match")
def match(
    request: Request,
    p: MaybeMember,
    account: Text = "",
    line_id: Text = "",
    transfer_id: Annotated[list[str] | None, Form()] = None,
    note: Text = "",
) -> Response:
    """A line matched by hand with a transfer, or with the several the bank booked on it
    (`transfer_id` given once per transfer), and why."""
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    try:
        line = _id(line_id, errors.UNKNOWN_LINE())
        transfers = [
            _id(t, errors.UNKNOWN_MOVEMENT(transfer=t[:20], account=account[:20]))
            for t in (transfer_id or [])[: service.MAX_PARTS + 1]
        ]
        made = service.match_by_hand(node_of(request), treasurer.id, line, transfers, note)
    except Refusal as refusal:
        return _refused(request, _account(account), refusal)
    return done(PATH, account=made[0].line.account, matched=made[0].id, parts=len(made))


@router.post(PATH + "/undo")
def undo(request: Request, p: MaybeMember, account: Text = "", match_id: Text = "") -> Response:
    treasurer = signed_in(request, p, "treasurer")
    if isinstance(treasurer, Response):
        return treasurer
    try:
        found = _id(match_id, errors.UNKNOWN_MATCH())
        undone_in = service.undo(node_of(request), treasurer.id, found)
    except Refusal as refusal:
        return _refused(request, _account(account), refusal)
    return done(PATH, account=undone_in, undone=found)
