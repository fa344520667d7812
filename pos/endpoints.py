"""The counter's API (JSON, under /api/v1): a shop's invoices, its live feed of payments,
refunds and its day; the customer's side of paying at the counter. Thin handlers over
`service.py`. (The pages: `pages.py`; codes customers show, offline allowances: `codes/`.)"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ledger.posting import Posted
from ledger.signing import SignedOrder
from members.access import Counter, WalletHolder, node_of
from members.errors import BAD_SIGNATURE_ENCODING
from pos import service, stickers
from pos.schemas import (
    DayOut,
    InvoiceIn,
    InvoiceOut,
    InvoicePaymentIn,
    LinkOut,
    PaidOut,
    RefundIn,
    SaleOut,
    ShopPaymentIn,
)
from web.pages import public_origin
from web.schemas import SignedOrderIn

router = APIRouter(prefix="/api/v1", tags=["pos"])

InvoiceId = Annotated[str, Path(min_length=8, max_length=24, pattern=r"^[A-Za-z0-9_-]+$")]
MemberId = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
HEARTBEAT_S = 15.0  # a comment line now and then keeps proxies from closing the stream
LOOK_AGAIN_S = 2.0  # and the feed looks by itself, should a notice get lost


def envelope_of(body: SignedOrderIn) -> SignedOrder:
    """The signed order a body carries, its signature's encoding checked."""
    try:
        return SignedOrder.from_json(body.model_dump())
    except ValueError:
        raise BAD_SIGNATURE_ENCODING() from None


def invoice_out(request: Request, invoice: service.Invoice) -> InvoiceOut:
    node = node_of(request)
    shop = service.shop_open(invoice)  # read with the invoice
    return InvoiceOut(
        id=invoice.id,
        merchant=invoice.merchant_id,
        shop=shop.trade_name,
        amount=invoice.amount,
        currency=node.ledger.chart.local,
        label=invoice.label,
        state=invoice.state(service.now_ms()),
        created_ms=invoice.created_ms,
        expires_ms=invoice.expires_ms,
        url=service.invoice_link(node, public_origin(request), invoice),
        transfer_id=invoice.transfer_id,
        payer_name=invoice.payer_name,
        paid_ms=invoice.paid_ms,
    )


def paid_out(posted: Posted, response: Response) -> PaidOut:
    if posted.replayed:
        response.status_code = 200
    return PaidOut(
        transfer_id=posted.transfer_id,
        amount=max(posted.postings.values()),
        created_ms=posted.created_ms,
        replayed=posted.replayed,
    )


# -- the shop's side ---------------------------------------------------------------------------


@router.post("/pos/invoices", status_code=201, response_model=InvoiceOut)
def create_invoice(body: InvoiceIn, request: Request, merchant: Counter) -> InvoiceOut:
    """Ask for `amount`: the answer's `url` is what the QR code shows the customer."""
    made_by = f"member:{merchant.id}"
    invoice = service.new_invoice(
        node_of(request),
        merchant,
        body.amount,
        label=body.label,
        ttl_s=body.ttl_s,
        made_by=made_by,
    )
    return invoice_out(request, invoice)


@router.get("/pos/invoices/{invoice_id}", response_model=InvoiceOut)
def get_invoice(invoice_id: InvoiceId, request: Request, merchant: Counter) -> InvoiceOut:
    invoice = service.own_invoice(node_of(request), merchant, invoice_id)
    return invoice_out(request, invoice)


@router.post("/pos/invoices/{invoice_id}/cancel", response_model=InvoiceOut)
def cancel_invoice(invoice_id: InvoiceId, request: Request, merchant: Counter) -> InvoiceOut:
    """Cancel an invoice not paid yet: its code no longer pays."""
    invoice = service.cancel_invoice(node_of(request), merchant, invoice_id)
    return invoice_out(request, invoice)


@router.post("/pos/refunds", status_code=201, response_model=PaidOut)
def refund(body: RefundIn, request: Request, response: Response, merchant: Counter) -> PaidOut:
    """Give back all or part of a payment the shop received (a refund order signed by one
    of the shop's keys; refunds of a payment add up to at most its amount)."""
    posted = service.refund(node_of(request), merchant, envelope_of(body))
    return paid_out(posted, response)


@router.get("/pos/day", response_model=DayOut)
def day(
    request: Request,
    merchant: Counter,
    on: Annotated[str | None, Query(alias="day", max_length=10)] = None,
) -> DayOut:
    """The shop's payments and refunds of a day (today by default, the node's time zone)."""
    node = node_of(request)
    found = service.day_of(node, merchant, service.parse_day(on, node.settings.timezone))
    return DayOut(
        day=found.day.isoformat(),
        currency=node.ledger.chart.local,
        takings=found.takings,
        payments=found.count,
        items=[SaleOut(**vars(s)) for s in found.sales],
    )


@router.get("/pos/day.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def day_csv(
    request: Request,
    merchant: Counter,
    on: Annotated[str | None, Query(alias="day", max_length=10)] = None,
) -> Response:
    node = node_of(request)
    found = service.day_of(node, merchant, service.parse_day(on, node.settings.timezone))
    name = f"caisse-{merchant.id}-{found.day.isoformat()}.csv"
    return Response(
        service.day_csv(node, found).encode("utf-8-sig"),  # the BOM: spreadsheets read UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/pos/sticker.{kind}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "application/pdf": {}}}},
)
def sticker(
    request: Request, merchant: Counter, kind: Annotated[str, Path(pattern="^(png|pdf)$")]
) -> Response:
    """The shop's counter sticker: customers scan it and type the amount."""
    node = node_of(request)
    shop = service.open_shop(node, merchant.id)
    link = service.sticker_link(node, public_origin(request), merchant.id)
    if kind == "png":
        return Response(stickers.png(link), media_type="image/png")
    pdf = stickers.pdf(link, shop, node.settings.village, node.ledger.chart.local)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="autocollant-{shop.slug}.pdf"'},
    )


@router.get(
    "/pos/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request,
    merchant: Counter,
    after: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    wait: Annotated[int, Query(ge=0, le=3600)] = 3600,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """Server-sent events: one `sale` event per payment the shop receives, as it is
    posted by any of the node's processes. The stream ends after `wait` seconds (0: what
    came after `after`, then the end: a poll); reconnecting with `Last-Event-ID` (browsers
    do it by themselves) resumes after the last payment seen."""
    node = node_of(request)
    start = after
    if last_event_id is not None and last_event_id.isascii() and last_event_id.isdigit():
        start = int(last_event_id)
    if start is None:
        start = await run_in_threadpool(service.last_sale, node, merchant.id)
    return StreamingResponse(
        _feed(request, merchant.id, start, time.monotonic() + wait),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _feed(
    request: Request, merchant_id: str, last: int, deadline: float
) -> AsyncIterator[str]:
    node = node_of(request)
    yield f"retry: 2000\nevent: ready\ndata: {json.dumps({'after': last})}\n\n"
    with node.notices.subscribe(service.channel(merchant_id)) as notices:
        quiet, woken = 0.0, list[str]()
        while True:
            sales = await run_in_threadpool(service.sales_after, node, merchant_id, last)
            for sale in sales:
                last = sale.transfer_id
                data = SaleOut(**vars(sale)).model_dump_json()
                yield f"id: {last}\nevent: sale\ndata: {data}\n\n"
            for note in woken:
                if note.startswith("cancelled "):
                    payload = json.dumps({"invoice": note.removeprefix("cancelled ")})
                    yield f"event: cancelled\ndata: {payload}\n\n"
            quiet = 0.0 if sales or woken else quiet + LOOK_AGAIN_S
            if quiet >= HEARTBEAT_S:
                quiet = 0.0
                yield ": still here\n\n"
            left = deadline - time.monotonic()
            if left <= 0 or await request.is_disconnected():
                return
            woken = await notices.wait(min(LOOK_AGAIN_S, left))


# -- the customer's side -----------------------------------------------------------------------


@router.get("/pay/link", response_model=LinkOut)
def read_link(
    request: Request,
    member: WalletHolder,
    m: Annotated[str, Query(max_length=48)],
    s: Annotated[str, Query(max_length=100)],
    i: Annotated[str | None, Query(max_length=24)] = None,
    a: Annotated[str | None, Query(max_length=20)] = None,
    e: Annotated[str | None, Query(max_length=20)] = None,
) -> LinkOut:
    """What a scanned code asks (whom to pay, how much), once the node's signature over it
    is checked: for an app that scans codes itself."""
    query = {k: v for k, v in {"m": m, "s": s, "i": i, "a": a, "e": e}.items() if v is not None}
    asked = service.read_link(node_of(request), query)
    return link_out(request, asked)


def link_out(request: Request, asked: service.PayRequest) -> LinkOut:
    node = node_of(request)
    return LinkOut(
        merchant=asked.shop.member_id,
        account=asked.shop.account,
        shop=asked.shop.trade_name,
        place=asked.shop.place,
        amount=asked.invoice.amount if asked.invoice else None,
        currency=node.ledger.chart.local,
        invoice=invoice_out(request, asked.invoice) if asked.invoice else None,
    )


@router.post("/pay/invoices/{invoice_id}", status_code=201, response_model=PaidOut)
async def pay_invoice(
    invoice_id: InvoiceId,
    body: InvoicePaymentIn,
    request: Request,
    response: Response,
    member: WalletHolder,
) -> PaidOut:
    """Pay an invoice: a payment order to its shop, of its amount, naming it (`invoice`),
    signed on your device. An invoice is paid once; the same order sent again answers
    its first result (200)."""
    node, envelope = node_of(request), envelope_of(body)
    posted = await service.pay_invoice(node, member, invoice_id, envelope)
    return paid_out(posted, response)


@router.post("/pay/shops/{merchant_id}", status_code=201, response_model=PaidOut)
def pay_shop(
    merchant_id: MemberId,
    body: ShopPaymentIn,
    request: Request,
    response: Response,
    member: WalletHolder,
) -> PaidOut:
    """Pay a shop an amount you typed (its counter sticker): the shop's point of sale sees
    it arrive."""
    posted = service.pay_shop(node_of(request), member, merchant_id, envelope_of(body))
    return paid_out(posted, response)
