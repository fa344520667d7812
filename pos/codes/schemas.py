"""What the API of codes customers show and of offline allowances reads and writes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from web.schemas import SignedOrderIn, Strict


class AuthorisationIn(Strict):
    """An authorisation signed on the customer's device: base64url of its canonical JSON
    ({v, node, kind: "authorisation", id, key, from, cap, currency, expires, to?}) and the
    signature of those bytes."""

    auth: str = Field(min_length=1, max_length=2048, pattern=r"^[A-Za-z0-9_-]+$")
    auth_sig: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")


class PresentedOut(BaseModel):
    code: str = Field(description="What the shop scans (in `url`) or types.")
    url: str
    cap: int
    state: str = Field(description="open, used or expired")
    expires_ms: int
    transfer_id: int | None = None
    collected: int | None = None
    collected_by: str | None = None


class ScannedOut(BaseModel):
    """A customer's code as the shop sees it before collecting."""

    code: str
    payer: str
    payer_name: str
    cap: int
    currency: str
    expires_ms: int
    auth: str
    auth_sig: str


class AllowanceOut(BaseModel):
    """A member's offline allowance: what is set aside, and a certificate for one device."""

    balance: int
    currency: str
    live_until_ms: int | None = Field(
        description="The allowance comes back to the wallet only after this (a certificate "
        "shops offline may accept runs until then)."
    )
    certificate: dict[str, str | int] | None = Field(
        None,
        description="Signed by the node key (`sig`) over the other fields with kind "
        "`allowance` and the node's origin, as the links of QR codes are.",
    )


class AllowanceHoldIn(SignedOrderIn):
    """An `allowance_hold` order (from your wallet to `escrow:offline:<your id>`) signed on
    your device, and the device key the certificate is for."""

    device_key: str = Field(min_length=8, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
