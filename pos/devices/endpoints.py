"""The counter devices' API (JSON, under /api/v1): the merchant names a device and gets its
pairing code, lists and removes devices; the device pairs with the code. Thin handlers over
`service.py`. (The pages: `pages.py`.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from members.access import Member, Principal, WalletOwner, node_of, principal
from members.endpoints import set_session_cookie
from members.errors import FORBIDDEN
from pos.devices import service
from pos.devices.schemas import DeviceOut, PairedOut, PairIn, PairingCodeIn, PairingCodeOut
from web.pages import public_origin

router = APIRouter(prefix="/api/v1", tags=["pos"])

DeviceId = Annotated[int, Path(ge=1, le=2**53)]


async def _shop_owner(member: WalletOwner) -> Member:
    # Pairing hands a device the shop's till: the merchant's password, never a token, and
    # never a device already at the till.
    if member.role != "merchant":
        raise FORBIDDEN()
    return member


ShopOwner = Annotated[Member, Depends(_shop_owner)]


def device_out(device: service.Device) -> DeviceOut:
    return DeviceOut(
        id=device.id,
        label=device.label,
        state=device.state,
        created_ms=device.created_ms,
        code_expires_ms=device.code_expires_ms,
        paired_ms=device.paired_ms,
        key_id=device.key_id,
    )


@router.get("/pos/devices", response_model=list[DeviceOut])
def devices(request: Request, merchant: ShopOwner) -> list[DeviceOut]:
    """The shop's counter devices: paired, or waiting for their code to be used."""
    return [device_out(d) for d in service.devices(node_of(request), merchant)]


@router.post("/pos/devices", status_code=201, response_model=PairingCodeOut)
def new_device(body: PairingCodeIn, request: Request, merchant: ShopOwner) -> PairingCodeOut:
    """Name a device of the counter and get its pairing code: good once, for ten minutes.
    The device opens `url` (the QR code) or types `code` on /pos/pair."""
    made = service.new_pairing_code(node_of(request), merchant, body.label)
    return PairingCodeOut(
        device=device_out(made.device), code=made.code, url=made.link(public_origin(request))
    )


@router.delete("/pos/devices/{device_id}", status_code=204)
def remove_device(device_id: DeviceId, request: Request, merchant: ShopOwner) -> None:
    """Unpair a device: its counter key is revoked and its session ended, at once."""
    service.remove(node_of(request), merchant, device_id)


@router.post("/pos/pair", status_code=201, response_model=PairedOut)
def pair(
    body: PairIn,
    request: Request,
    response: Response,
    _: Annotated[Principal | None, Depends(principal)],
) -> PairedOut:
    """Pair this device with the shop whose merchant gave `code`: `public_key` becomes a
    counter key of the shop (it signs refunds and collections, nothing else), and the
    answer sets this device's session cookie (the rights of a `pos` token, and the
    counter's pages)."""
    node = node_of(request)
    paired = service.pair(node, body.code, body.public_key)
    set_session_cookie(request, response, paired.token, paired.days)
    assert paired.device.key_id is not None
    return PairedOut(
        merchant=paired.shop.member_id,
        shop=paired.shop.trade_name,
        label=paired.device.label,
        key_id=paired.device.key_id,
        csrf=paired.csrf,
        session_days=paired.days,
    )
