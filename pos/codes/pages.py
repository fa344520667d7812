"""The pages of codes customers show (`/pay/code`: the customer's code; `/c/<code>`: what a
camera app opens) and of paying where there is no network (`/pay/offline`, and `/sw.js`, the
service worker that keeps the pages used offline). Scripts: `web/static/pos.js`, `sw.js`."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.resources import files
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ledger.operations import allowance_escrow
from members.access import MaybeCounter, MaybeMember, node_of, wallet_holder
from pos.codes import service
from pos.codes.endpoints import Code
from pos.codes.errors import UNKNOWN_CODE
from pos.pages import page_data
from web.pages import page, public_origin, when
from web.qr import qr_svg

router = APIRouter(include_in_schema=False)


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
            **page_data(request),
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
            **page_data(request),
            "page": "offline",
            "member": member.id,
            "node": node.ledger.origin,
            "origin": public_origin(request),
            "escrow": allowance_escrow(member.account),
        },
    )
