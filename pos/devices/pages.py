"""The counter devices' pages: the merchant's (`/pos/devices`, "Appareils de caisse": name a
device, show its pairing code as a QR code and in short, remove a device) and the device's
(`/pos/pair`, what the code's link opens: the device makes its key and pairs, then goes to
the point of sale). Script: `web/static/counter_devices.js`.

The merchant's forms post to the page's own address: a refusal shows the page again with
the reason; a new code is shown on the answer itself (it is shown once: only its hash is
kept); a removal redirects to the page saying so.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ledger.errors import LedgerError
from members.access import MaybeMember, Member, Principal, node_of, principal, signed_in
from members.errors import TOKEN_SCOPE
from pos.devices import service
from pos.devices.endpoints import DeviceId
from web.i18n import gettext_for
from web.pages import Text, done, page, public_origin, say, when
from web.qr import qr_data_url
from web.refusals import Refusal, refusal_of

router = APIRouter(include_in_schema=False)

# What the pairing page's script may say (msgids; French in pos.po).
PAIRING_MESSAGES = {
    "making": "Making this device's key…",
    "pairing": "Pairing…",
    "paired": "Paired with {shop} as {label}: opening the point of sale…",
    "noCrypto": "This browser cannot make a signing key here: it needs a recent browser and a "
    "secure page (https).",
    "noCode": "Type the pairing code the merchant's screen shows.",
}


def _shop_owner(request: Request, p: Principal | None) -> Member | Response:
    """The merchant, signed in with their password (no token, no counter device)."""
    merchant = signed_in(request, p, "merchant")
    if isinstance(merchant, Member) and p is not None and p.via != "session":
        raise TOKEN_SCOPE()
    return merchant


def _devices_page(
    request: Request,
    merchant: Member,
    *,
    status: int = 200,
    flash: str | None = None,
    made: service.PairingCode | None = None,
) -> Response:
    node = node_of(request)
    qr = link = None
    if made is not None:
        link = made.link(public_origin(request))
        qr = qr_data_url(link)
    return page(
        request,
        "pos/devices.html",
        status=status,
        flash=flash,
        devices=service.devices(node, merchant),
        made=made,
        link=link,
        qr=qr,
        until=when(request, made.device.code_expires_ms) if made else None,
        when=lambda ms: when(request, ms),
    )


@router.get("/pos/devices")
def devices(
    request: Request,
    p: MaybeMember,
    removed: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> Response:
    """The shop's counter devices, and the form to pair another."""
    merchant = _shop_owner(request, p)
    if isinstance(merchant, Response):
        return merchant
    flash = say(request, "Device removed: it can no longer take payments.") if removed else None
    return _devices_page(request, merchant, flash=flash)


@router.post("/pos/devices")
def new_device(request: Request, p: MaybeMember, label: Text = "") -> Response:
    """Name a device and show its pairing code (once)."""
    merchant = _shop_owner(request, p)
    if isinstance(merchant, Response):
        return merchant
    try:
        made = service.new_pairing_code(node_of(request), merchant, label)
    except (Refusal, LedgerError) as exc:
        refusal = refusal_of(exc) if isinstance(exc, LedgerError) else exc
        return _devices_page(request, merchant, status=refusal.status, flash=refusal.text(request))
    return _devices_page(request, merchant, made=made)


@router.post("/pos/devices/{device_id}/remove")
def remove_device(device_id: DeviceId, request: Request, p: MaybeMember) -> Response:
    """Unpair a device (or withdraw a code not used yet)."""
    merchant = _shop_owner(request, p)
    if isinstance(merchant, Response):
        return merchant
    try:
        service.remove(node_of(request), merchant, device_id)
    except (Refusal, LedgerError) as exc:
        refusal = refusal_of(exc) if isinstance(exc, LedgerError) else exc
        return _devices_page(request, merchant, status=refusal.status, flash=refusal.text(request))
    return done("/pos/devices", removed=device_id)


@router.get("/pos/pair")
def pair(
    request: Request,
    _: Annotated[Principal | None, Depends(principal)],
    code: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """What a pairing code's link opens on the device: whose till it joins, and the button
    that makes the device's key and pairs it. Without a code, a field to type it."""
    shop = device = None
    status, refused = 200, None
    if code:
        try:
            device, shop = service.waiting(node_of(request), code)
        except Refusal as refusal:
            status, refused = refusal.status, refusal.text(request)
    tr = gettext_for(request)
    return page(
        request,
        "pos/devices_pair.html",
        status=status,
        flash=refused,
        code=code,
        shop=shop,
        device=device,
        data={"messages": {k: tr.gettext(v) for k, v in PAIRING_MESSAGES.items()}},
    )
