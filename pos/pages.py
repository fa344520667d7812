"""The counter's pages: the point of sale (`/pos`: keypad, QR code, "Payé" live), the
customer's pay page that every code of the node opens (`/pay`), an invoice's page, the
shop's day with its refunds, and the counter sticker. Scripts: `web/static/pos.js`. (The
customer's code and the pages used offline: `codes/pages.py`.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ledger.canonical import b64
from members.access import (
    MaybeCounter,
    MaybeMember,
    Principal,
    at_counter,
    may_register_keys,
    node_of,
    wallet_holder,
)
from pos import scanning, service
from pos.endpoints import InvoiceId
from web.i18n import gettext_for
from web.pages import number_format, page, public_origin, when
from web.qr import qr_svg

router = APIRouter(include_in_schema=False)

# How people read an invoice's state (msgids, French in pos.po).
STATES = {
    "open": "Waiting for payment",
    "paid": "Paid",
    "cancelled": "Cancelled",
    "expired": "Expired",
}


def page_data(request: Request) -> dict[str, object]:
    """What every page of the counter's script reads: the currency, the largest amount, and
    how numbers are written in the reader's language."""
    node = node_of(request)
    return {
        "currency": node.ledger.chart.local,
        "maxAmount": node.settings.max_amount,
        **number_format(request),
    }


# What the counter's script says when this device holds no key of the shop (msgid).
COUNTER_KEY_MESSAGES = {
    "unpaired": "This device holds no key of the shop: ask the merchant to pair it again "
    "(Counter devices).",
}


def _signing_data(request: Request, p: Principal | None) -> dict[str, object]:
    """Whether the page may register a key for this device: a device paired with the
    counter may not (it got its key when paired: `pos.devices`)."""
    tr = gettext_for(request)
    said = {key: tr.gettext(msgid) for key, msgid in COUNTER_KEY_MESSAGES.items()}
    return {"mayRegisterKeys": may_register_keys(p), **said}


@router.get("/pos")
def counter(
    request: Request,
    p: MaybeCounter,
    code: Annotated[str | None, Query(max_length=12, pattern=r"^[A-Za-z0-9-]*$")] = None,
) -> Response:
    """The point of sale: type an amount, show the code, see it paid; or take the code a
    customer shows (`code`: one a camera app opened)."""
    merchant = at_counter(request, p)
    if isinstance(merchant, Response):
        return merchant
    node = node_of(request)
    shop = service.open_shop(node, merchant.id)
    today = service.day_of(node, merchant, service.parse_day(None, node.settings.timezone))
    return page(
        request,
        "pos/counter.html",
        shop=shop,
        today=today,
        code=code,
        when=lambda ms: when(request, ms),
        data={
            **page_data(request),
            "scanner": scanning.scanner_data(request),
            "node": node.ledger.origin,
            "nodeKey": b64(node.node_key.public_key),
            **_signing_data(request, p),
        },
    )


@router.get("/pos/invoices/{invoice_id}")
def invoice(invoice_id: InvoiceId, request: Request, p: MaybeCounter) -> Response:
    """One invoice of the shop, its code while open, and its state."""
    merchant = at_counter(request, p)
    if isinstance(merchant, Response):
        return merchant
    node = node_of(request)
    found = service.own_invoice(node, merchant, invoice_id)
    state = found.state(service.now_ms())
    payer = service.customer_name(node, found.paid_by) if found.paid_by else None
    return page(
        request,
        "pos/invoice.html",
        invoice=found,
        state=state,
        state_label=STATES[state],
        payer=payer,
        when=lambda ms: when(request, ms),
    )


@router.get("/pos/invoices/{invoice_id}/qr.svg")
def invoice_qr(invoice_id: InvoiceId, request: Request, p: MaybeCounter) -> Response:
    merchant = at_counter(request, p)
    if isinstance(merchant, Response):
        return merchant
    node = node_of(request)
    found = service.own_invoice(node, merchant, invoice_id)
    link = service.invoice_link(node, public_origin(request), found)
    return Response(qr_svg(link), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/pos/day")
def day(
    request: Request,
    p: MaybeCounter,
    on: Annotated[str | None, Query(alias="day", max_length=10)] = None,
) -> Response:
    """The shop's day: takings, each payment with its receipt, refunds, the CSV."""
    merchant = at_counter(request, p)
    if isinstance(merchant, Response):
        return merchant
    node = node_of(request)
    found = service.day_of(node, merchant, service.parse_day(on, node.settings.timezone))
    return page(
        request,
        "pos/day.html",
        day=found,
        when=lambda ms: when(request, ms),
        data={
            **page_data(request),
            "page": "day",
            "member": merchant.id,
            **_signing_data(request, p),
        },
    )


@router.get("/pos/sticker")
def sticker(request: Request, p: MaybeCounter) -> Response:
    """The shop's counter sticker, to print or to show on a second screen."""
    merchant = at_counter(request, p)
    if isinstance(merchant, Response):
        return merchant
    node = node_of(request)
    shop = service.open_shop(node, merchant.id)
    link = service.sticker_link(node, public_origin(request), merchant.id)
    return page(request, "pos/sticker.html", shop=shop, link=link)


@router.get("/pay")
def pay(
    request: Request,
    p: MaybeMember,
    m: Annotated[str, Query(max_length=48)] = "",
    s: Annotated[str, Query(max_length=100)] = "",
    i: Annotated[str | None, Query(max_length=24)] = None,
    a: Annotated[str | None, Query(max_length=20)] = None,
    e: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """What every counter code opens: whom you pay and how much, checked against the
    node's signature, then the customer confirms and their device signs."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    query = {k: v for k, v in {"m": m, "s": s, "i": i, "a": a, "e": e}.items() if v is not None}
    asked = service.read_link(node, query)
    invoice = asked.invoice
    state = invoice.state(service.now_ms()) if invoice else "open"
    return page(
        request,
        "pos/pay.html",
        shop=asked.shop,
        invoice=invoice,
        state=state,
        state_label=STATES[state],
        own=asked.shop.member_id == member.id,
        balance=node.ledger.balance(member.account),
        when=lambda ms: when(request, ms),
        data={
            **page_data(request),
            "page": "pay",
            "member": member.id,
            "shop": asked.shop.member_id,
            "invoice": invoice.id if invoice else None,
            "amount": invoice.amount if invoice else None,
            "expiresMs": invoice.expires_ms if invoice else None,
        },
    )
