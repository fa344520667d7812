"""The treasurer's reconciliation API: import a statement (its bytes as the body), read
Stripe's balance, see an account's matches, match by hand, undo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from audits.reconciliation import errors, service
from audits.reconciliation.parsed import MAX_BYTES
from audits.reconciliation.schemas import (
    AccountOut,
    HandMatch,
    HandMatchOut,
    ImportedOut,
    account_out,
    hand_match_out,
    imported_out,
)
from members.access import Treasurer, node_of
from web.pages import PathId

router = APIRouter(prefix="/api/v1/treasury/reconciliation", tags=["treasury"])

Account = Annotated[str, Query(pattern=r"^(reserve:digital|reserve:paper|clearing:stripe)$")]


async def _body(request: Request) -> bytes:
    """The statement, read no further than the largest one taken."""
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_BYTES:
            raise errors.STATEMENT_TOO_LARGE(maximum=MAX_BYTES)
    return bytes(received)


@router.post("/statements", response_model=ImportedOut, status_code=201)
async def import_statement(
    request: Request,
    treasurer: Treasurer,
    format: Annotated[str, Query(pattern=r"^(camt|csv|stripe-csv)$")],
    account: Annotated[
        str | None, Query(pattern=r"^(reserve:digital|reserve:paper|clearing:stripe)$")
    ] = None,
    name: Annotated[str, Query(max_length=200)] = "",
) -> ImportedOut:
    """Import a bank statement (CAMT.053 XML, the bank's CSV) or Stripe's CSV export, sent
    as the request's body. A statement imported again adds no line and matches nothing
    twice (`added` is 0)."""
    data = await _body(request)
    done = await run_in_threadpool(
        service.import_statement,
        node_of(request),
        data,
        format,
        name=name,
        account=account,
        by=treasurer.id,
    )
    return imported_out(done)


@router.post("/stripe", response_model=ImportedOut, status_code=201)
def import_stripe(request: Request, treasurer: Treasurer) -> ImportedOut:
    """Read Stripe's balance transactions through its API, import and match them."""
    return imported_out(service.import_stripe(node_of(request), by=treasurer.id))


@router.get("", response_model=AccountOut)
def account_view(request: Request, treasurer: Treasurer, account: Account) -> AccountOut:
    """An account's statement lines matched and unmatched, its ledger movements unmatched,
    the near misses (a line a few cents from a movement), with totals."""
    return account_out(service.view(node_of(request), account))


@router.post("/matches", response_model=HandMatchOut, status_code=201)
def match_by_hand(request: Request, treasurer: Treasurer, body: HandMatch) -> HandMatchOut:
    """Match a line with a transfer by hand (`transfer_id`), saying why in a note; or with
    the several transfers the bank booked on that one line (`transfer_ids`, a whole transfer
    file booked as one debit), refused (422 `batch_sum_differs`, nothing written) unless
    they are all on the line's account, all unmatched, and add up to the line to the cent."""
    made = service.match_by_hand(
        node_of(request), treasurer.id, body.line_id, body.transfers, body.note
    )
    return hand_match_out(made)


@router.delete("/matches/{match_id}", status_code=204)
def undo_match(request: Request, treasurer: Treasurer, match_id: PathId) -> None:
    """Undo a match: its line and its movement are unmatched again (the match is kept in
    the history, stamped as undone). A match of a batch (a line booking several movements)
    undoes the whole batch."""
    service.undo(node_of(request), treasurer.id, match_id)
