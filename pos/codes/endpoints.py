"""The API (JSON, under /api/v1) of codes customers show: the customer's code, the shop
scanning and collecting it; and of offline allowances: units set aside, the certificate a
device shows shops offline. Thin handlers over `service.py`. (The pages: `pages.py`.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from members.access import Counter, WalletHolder, node_of
from pos.codes import service
from pos.codes.errors import UNKNOWN_CODE
from pos.codes.schemas import (
    AllowanceHoldIn,
    AllowanceOut,
    AuthorisationIn,
    PresentedOut,
    ScannedOut,
)
from pos.endpoints import envelope_of, paid_out
from pos.schemas import PaidOut
from pos.service import now_ms
from web.pages import public_origin
from web.schemas import SignedOrderIn

router = APIRouter(prefix="/api/v1", tags=["pos"])


# -- codes customers show ----------------------------------------------------------------------

Code = Annotated[str, Path(min_length=8, max_length=12, pattern=r"^[A-Za-z0-9-]+$")]


def presented_out(request: Request, found: service.Presented) -> PresentedOut:
    return PresentedOut(
        code=found.code,
        url=f"{public_origin(request)}/c/{found.code}",
        cap=found.cap,
        state=found.state(now_ms()),
        expires_ms=found.expires_ms,
        transfer_id=found.transfer_id,
        collected=found.collected,
        collected_by=found.collected_by,
    )


@router.post("/pay/authorisations", status_code=201, response_model=PresentedOut)
def present(body: AuthorisationIn, request: Request, member: WalletHolder) -> PresentedOut:
    """Show a shop a code to collect up to `cap` from your wallet: an authorisation signed
    on your device, valid a few minutes, used once."""
    found = service.present(node_of(request), member, body.auth, body.auth_sig)
    return presented_out(request, found)


@router.get("/pay/authorisations/{code}", response_model=PresentedOut)
def presented(code: Code, request: Request, member: WalletHolder) -> PresentedOut:
    """Your code's state: open, used (by which shop, how much) or expired."""
    found = service.find_presented(node_of(request), code)
    if found.payer_id != member.id:
        raise UNKNOWN_CODE()
    return presented_out(request, found)


@router.get("/pos/authorisations/{code}", response_model=ScannedOut)
def scanned(code: Code, request: Request, merchant: Counter) -> ScannedOut:
    """A customer's code, scanned or typed at the counter: who authorises how much."""
    node = node_of(request)
    found = service.presented_to(node, merchant, code)
    return ScannedOut(
        code=found.code,
        payer=f"member:{found.payer_id}",
        payer_name=found.payer_name,
        cap=found.cap,
        currency=node.ledger.chart.local,
        expires_ms=found.expires_ms,
        auth=found.auth,
        auth_sig=found.auth_sig,
    )


@router.post("/pos/collections", status_code=201, response_model=PaidOut)
def collect(
    body: SignedOrderIn, request: Request, response: Response, merchant: Counter
) -> PaidOut:
    """Collect up to what a customer's code authorises: a `collection` order signed by a key
    of the shop, carrying the customer's `auth` and `auth_sig`."""
    posted = service.collect(node_of(request), merchant, envelope_of(body))
    return paid_out(posted, response)


# -- offline allowances ------------------------------------------------------------------------

DeviceKey = Annotated[str, Query(min_length=8, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


def allowance_out(request: Request, found: service.Allowance) -> AllowanceOut:
    return AllowanceOut(
        balance=found.balance,
        currency=node_of(request).ledger.chart.local,
        live_until_ms=found.live_until_ms,
        certificate=found.certificate,
    )


@router.get("/pay/allowance", response_model=AllowanceOut)
def allowance(request: Request, member: WalletHolder) -> AllowanceOut:
    """What you set aside for shops that cannot reach the node."""
    return allowance_out(request, service.allowance_of(node_of(request), member))


@router.post("/pay/allowance", status_code=201, response_model=AllowanceOut)
def hold_allowance(body: AllowanceHoldIn, request: Request, member: WalletHolder) -> AllowanceOut:
    """Set units aside for offline payments (a signed `allowance_hold`), and get the
    certificate this device shows shops offline."""
    node = node_of(request)
    envelope = envelope_of(SignedOrderIn(order=body.order, sig=body.sig))
    service.hold_allowance(node, member, envelope)
    return allowance_out(request, service.certify(node, member, body.device_key))


@router.post("/pay/allowance/certificate", status_code=201, response_model=AllowanceOut)
def certify(request: Request, member: WalletHolder, key: DeviceKey) -> AllowanceOut:
    """A fresh certificate of what is set aside now, for the device key `key`."""
    return allowance_out(request, service.certify(node_of(request), member, key))


@router.post("/pay/allowance/release", response_model=AllowanceOut)
def release_allowance(request: Request, member: WalletHolder) -> AllowanceOut:
    """Give the allowance back to the wallet, once no certificate of it is live."""
    return allowance_out(request, service.release_allowance(node_of(request), member))
