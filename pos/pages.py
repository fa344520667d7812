"""The counter's pages: the point of sale (`/pos`: keypad, QR code, "Payé" live), the
customer's pay page that every code of the node opens (`/pay`), an invoice's page, the
shop's day with its refunds, and the counter sticker. Scripts: `web/static/pos.js`."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.resources import files
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from ledger.canonical import b64
from ledger.operations import allowance_escrow
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
from pos.endpoints import Code, InvoiceId
from pos.errors import UNKNOWN_CODE
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


def _page_data(request: Request) -> dict[str, object]:
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
            **_page_data(request),
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
            **_page_data(request),
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
            **_page_data(request),
            "page": "pay",
            "member": member.id,
            "shop": asked.shop.member_id,
            "invoice": invoice.id if invoice else None,
            "amount": invoice.amount if invoice else None,
            "expiresMs": invoice.expires_ms if invoice else None,
        },
    )


# -- codes customers show ----------------------------------------------------------------------


@router.get("/pay/code")
def show_code(request: Request, p: MaybeMember) -> Response:
    """The customer shows a code the shop scans: up to an amount, for two minutes, once."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    return page(
        request,
        "pos/code.html",
        balance=node.ledger.balance(member.account),
        data={
            **_page_data(request),
            "page": "code",
            "member": member.id,
            "node": node.ledger.origin,
            "ttl": service.AUTH_TTL_S,
        },
    )


@router.get("/pay/authorisations/{code}/qr.svg")
def code_qr(code: Code, request: Request, p: MaybeMember) -> Response:
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    found = service.find_presented(node_of(request), code)
    if found.payer_id != member.id:
        raise UNKNOWN_CODE()
    link = f"{public_origin(request)}/c/{found.code}"
    return Response(qr_svg(link), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/c/{code}")
def code_link(code: Code, request: Request, p: MaybeCounter) -> Response:
    """What a customer's code opens when a camera app follows it: the shop's point of sale
    collecting it, or a word for whoever else scanned it."""
    if p is not None and p.member.role == "merchant":
        return RedirectResponse(f"/pos?code={quote(code)}", status_code=303)
    return page(request, "pos/code_link.html", code=code)


# -- where there is no network -----------------------------------------------------------------

# What the service worker keeps so that these pages open without the node (web/static/sw.js):
# each page as the signed-in member last saw it, and every file it loads.
OFFLINE_PAGES = ("/pay/offline", "/pos")
OFFLINE_ASSETS = (
    "sou.css",
    "favicon.svg",
    "sou.js",
    "pos.js",
    "qr.js",
    "scan.js",
    "vendor/zxing-wasm/zxing_reader.js",
    "vendor/zxing-wasm/zxing_reader.wasm",
    "vendor/zxing-wasm/zxing_writer.js",
    "vendor/zxing-wasm/zxing_writer.wasm",
)


@cache
def _service_worker() -> bytes:
    """sw.js, its first line naming what it keeps and the version of those files: a
    release that changes one of them changes the worker, which then replaces its caches."""
    static = files("web") / "static"
    script = (static / "sw.js").read_bytes()
    digest = hashlib.sha256(script)
    for name in OFFLINE_ASSETS:
        digest.update((static / name).read_bytes())
    kept = {
        "version": digest.hexdigest()[:16],
        "pages": list(OFFLINE_PAGES),
        "assets": [f"/static/{name}" for name in OFFLINE_ASSETS],
    }
    return f"self.souOffline = {json.dumps(kept)};\n".encode() + script


@router.get("/sw.js")
def service_worker() -> Response:
    """The service worker of the pages used where there is no network; at the root, so
    that it sees the logins and logouts after which it forgets the pages it kept."""
    return Response(
        _service_worker(),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/pay/offline")
def offline(request: Request, p: MaybeMember) -> Response:
    """Paying where the shop has no network: units set aside, a certificate this device
    shows, and codes it signs and draws without the node."""
    member = wallet_holder(request, p)
    if isinstance(member, Response):
        return member
    node = node_of(request)
    found = service.allowance_of(node, member)
    return page(
        request,
        "pos/offline.html",
        balance=node.ledger.balance(member.account),
        allowance=found,
        until=when(request, found.live_until_ms) if found.live_until_ms else None,
        data={
            **_page_data(request),
            "page": "offline",
            "member": member.id,
            "node": node.ledger.origin,
            "origin": public_origin(request),
            "escrow": allowance_escrow(member.account),
        },
    )
