"""The wallet API (JSON, under /api/v1): balance, history, payments, receipts and the log's
proofs; thin handlers over `service.py`. (Joining, the session, keys and tokens:
`members/endpoints.py`.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.errors import LedgerError
from ledger.orders import CLIENT_ID
from ledger.posting import Posted
from ledger.signing import SignedOrder
from members.access import (
    MaybeMember,
    PosDevice,
    WalletHolder,
    node_of,
    token_hash,
    wallet_principal,
)
from members.errors import BAD_SIGNATURE_ENCODING
from wallet_api import service
from wallet_api.errors import NO_CHECKPOINT
from wallet_api.schemas import (
    Balance,
    Checkpoints,
    ConsistencyOut,
    History,
    MovementOut,
    NodeInfo,
    ReceiptOut,
    TransferFound,
    TransferOut,
)
from web.i18n import language_of
from web.pages import problem
from web.refusals import PROBLEM_JSON, REFUSALS, Refusal, refusal_of
from web.schemas import SignedOrderIn

router = APIRouter(prefix="/api/v1", tags=["wallet"])


def refusals(described: dict[int | str, str]) -> dict[int | str, dict[str, Any]]:
    """The refusals one route documents besides the app's (REFUSALS in web/refusals.py):
    {status: "`code`: when..."}."""
    every = {status: str(value["description"]) for status, value in REFUSALS.items()}
    return {
        str(status): {"description": text, "content": PROBLEM_JSON}
        for status, text in {**every, **described}.items()
    }


LOG_DAMAGED = (
    "`log_damaged`: a part of the stored log that the proof needs is missing or unreadable; "
    "the treasurer should run `sou audit`. (Or busy: send the same request again later.)"
)


@router.get("/wallet", response_model=Balance)
def wallet(request: Request, member: WalletHolder) -> Balance:
    node = node_of(request)
    return Balance(
        member=member.id,
        account=member.account,
        currency=node.ledger.chart.local,
        balance=service.balance(node, member),
    )


@router.get("/wallet/history", response_model=History)
def history(
    request: Request,
    member: WalletHolder,
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> History:
    """Movements of your wallet, newest first; page with `before`."""
    lang = language_of(request)
    items = service.history(node_of(request), member, before=before, limit=limit, lang=lang)
    return History(
        items=[MovementOut(**vars(m)) for m in items],
        next_before=items[-1].transfer_id if len(items) == limit else None,
    )


@router.post("/transfers", status_code=201, response_model=TransferOut)
async def transfer(
    body: SignedOrderIn, request: Request, response: Response, member: WalletHolder
) -> TransferOut:
    """Pay another member with an order signed by one of your device keys. Sending the
    same order again (same `id`) answers the first result, with status 200."""
    try:
        envelope = SignedOrder.from_json(body.model_dump())
    except ValueError:
        raise BAD_SIGNATURE_ENCODING() from None
    posted = await service.send_async(node_of(request), member, envelope)
    if posted.replayed:
        response.status_code = 200
    return transfer_out(posted)


def transfer_out(posted: Posted) -> TransferOut:
    return TransferOut(
        transfer_id=posted.transfer_id,
        kind=posted.kind,
        postings=posted.postings,
        created_ms=posted.created_ms,
        replayed=posted.replayed,
    )


@router.get(
    "/transfers",
    response_model=TransferFound,
    responses=refusals(
        {
            404: "`unknown_order`: no transfer came from an order of yours with this id.",
            403: "`no_wallet`, `token_scope`: only a wallet's holder looks up their orders.",
        }
    ),
)
def transfer_by_client_id(
    request: Request,
    member: WalletHolder,
    client_id: Annotated[str, Query(pattern=CLIENT_ID.pattern, max_length=64)],
) -> TransferFound:
    """What became of an order you sent, by its `id` (say, after a lost answer): the
    transfer it made and whether it is sealed in the log; 404 if the node never posted it."""
    return TransferFound(**service.transfer_by_client_id(node_of(request), member, client_id))


@router.get(
    "/transfers/{transfer_id}/receipt",
    response_model=ReceiptOut,
    responses=refusals(
        {
            404: "`unknown_transfer`: not a transfer of yours; "
            "`unknown_checkpoint`: the log has no checkpoint of `tree_size` entries.",
            409: "`not_sealed_yet`: not in the signed log yet; "
            "`not_in_that_tree`: logged after the checkpoint of `tree_size` entries.",
            503: LOG_DAMAGED,
        }
    ),
)
def receipt(
    transfer_id: Annotated[int, Path(ge=1, le=2**53)],
    request: Request,
    principal: MaybeMember,
    tree_size: Annotated[
        int | None,
        Query(ge=1, le=2**53, description="A checkpoint's size; the latest if absent."),
    ] = None,
) -> ReceiptOut:
    """The transfer's leaf, its inclusion proof and the signed checkpoint it leads to: the
    latest, or the checkpoint of `tree_size` entries (one you kept, say)."""
    member = principal.member if principal and principal.scope == "wallet" else None
    return ReceiptOut(**service.receipt(node_of(request), member, transfer_id, tree_size))


@router.get("/node", response_model=NodeInfo, tags=["node"])
def node_info(request: Request) -> NodeInfo:
    """The node's public keys (node and operator roles) and its latest checkpoint."""
    return NodeInfo(**service.node_keys(node_of(request)))


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    tags=["node"],
    responses=refusals({404: "`no_checkpoint`: the log has none yet."}),
)
def checkpoint(request: Request) -> str:
    """The latest signed checkpoint (C2SP signed note)."""
    latest = service.node_keys(node_of(request))["checkpoint"]
    if latest is None:
        raise NO_CHECKPOINT()
    return str(latest)


@router.get("/checkpoints", response_model=Checkpoints, tags=["node"])
def checkpoints(
    request: Request,
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Checkpoints:
    """The checkpoints the node signed, newest first; page with `before` (a tree size)."""
    items = service.checkpoints(node_of(request), before=before, limit=limit)
    return Checkpoints(
        items=items, next_before=items[-1]["tree_size"] if len(items) == limit else None
    )


@router.get(
    "/checkpoints/{tree_size}",
    response_class=PlainTextResponse,
    tags=["node"],
    responses=refusals({404: "`unknown_checkpoint`: the log has no checkpoint of this size."}),
)
def checkpoint_of_size(tree_size: Annotated[int, Path(ge=1, le=2**53)], request: Request) -> str:
    """The checkpoint the node signed when its log held `tree_size` entries."""
    return service.checkpoint_of_size(node_of(request), tree_size)


@router.get(
    "/log/consistency",
    response_model=ConsistencyOut,
    tags=["node"],
    responses=refusals(
        {
            404: "`beyond_the_log`: `to` is larger than the latest checkpoint's size.",
            422: "`bad_tree_sizes`: `from` is larger than `to`; `invalid_request`: not sizes.",
            503: LOG_DAMAGED,
        }
    ),
)
def consistency(
    request: Request,
    old_size: Annotated[int, Query(alias="from", ge=1, le=2**53)],
    to: Annotated[int, Query(ge=1, le=2**53)],
) -> ConsistencyOut:
    """The RFC 6962 proof that the log of `to` entries extends the log of `from` entries:
    with both checkpoints, anyone can check that the log only grew in between."""
    return ConsistencyOut(**service.consistency(node_of(request), old_size, to))


@router.get("/pos/payments", response_model=History, tags=["pos"])
def pos_payments(
    request: Request,
    merchant: PosDevice,
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> History:
    """For a point-of-sale device: the payments its merchant received, newest first."""
    # Filtered in the query, not after it: a page of the merchant's own spending must not
    # end the paging before older payments received.
    node, lang = node_of(request), language_of(request)
    items = service.history(node, merchant, before=before, limit=limit, incoming=True, lang=lang)
    return History(
        items=[MovementOut(**vars(m)) for m in items],
        next_before=items[-1].transfer_id if len(items) == limit else None,
    )


# -- payments by device token, before routing ---------------------------------------------


TRANSFERS = "/api/v1/transfers"
MAX_BODY = 16_384  # a signed payment order is well under 2 KB


class DirectPayments:
    """Payments by device token, answered before FastAPI's routing and dependency injection.

    `POST /api/v1/transfers` is most of a node's traffic: every payment a phone or a shop's
    terminal makes. Routing through every router and solving the handler's dependencies cost
    about a quarter of the CPU a payment takes (measured with py-spy under the HTTP
    benchmark), time during which the process's other requests and its batch writer wait for
    the interpreter. This middleware takes the common case only: a wallet token already
    remembered (`members.access.RECENT_S`) and a well-formed signed order. It calls the very
    functions the endpoint calls (`service.send_async`, `TransferOut`, `problem` for
    refusals). Everything else (sessions and CSRF, a token not remembered, a malformed body,
    another path) goes to the app unchanged, body included, where the endpoint answers as it
    always does: one behaviour, documented once in the OpenAPI.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secret = _device_token(scope)
        if secret is None:
            await self.app(scope, receive, send)
            return
        body, more = await _read(receive)
        if more or not await self._pay(scope, secret, body, send):
            await self.app(scope, _replay(body, more, receive), send)

    async def _pay(self, scope: Scope, secret: str, body: bytes, send: Send) -> bool:
        """Answer the payment, or False (nothing sent) to leave it to the app."""
        node = scope["app"].state.node
        member = wallet_principal(node, token_hash(secret))
        if member is None:
            return False
        try:
            envelope = SignedOrder.from_json(SignedOrderIn.model_validate_json(body).model_dump())
        except (ValidationError, ValueError):
            return False
        try:
            posted = await service.send_async(node, member, envelope)
        except Refusal as exc:
            await problem(Request(scope), exc)(scope, _nothing, send)
            return True
        except LedgerError as exc:
            await problem(Request(scope), refusal_of(exc))(scope, _nothing, send)
            return True
        out = transfer_out(posted).model_dump_json().encode()
        await _answer(send, 200 if posted.replayed else 201, out)
        return True


def _device_token(scope: Scope) -> str | None:
    """The bearer token of a JSON payment of announced, small size; None for anything else."""
    if scope["type"] != "http" or scope["path"] != TRANSFERS or scope["method"] != "POST":
        return None
    headers: dict[bytes, bytes] = dict(scope["headers"])
    length = headers.get(b"content-length", b"")
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    bearer = headers.get(b"authorization", b"")
    if not length.isdigit() or int(length) > MAX_BODY or kind != b"application/json":
        return None
    if bearer[:7].lower() != b"bearer ":
        return None
    return bearer[7:].strip().decode("latin-1")


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """The body, and whether the client sent more than MAX_BODY (then left to the app)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > MAX_BODY:
            return b"".join(chunks), True


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """What the app reads: the body already read, then whatever follows."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


async def _nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
