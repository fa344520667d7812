"""What the counter devices' API reads and writes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from web.schemas import ONE_LINE, Strict
from web.text import VisibleLine


class PairingCodeIn(Strict):
    label: VisibleLine = Field(min_length=1, max_length=80, pattern=ONE_LINE, examples=["Caisse 1"])


class DeviceOut(BaseModel):
    id: int
    label: str
    state: str = Field(description="waiting (for its code), paired, or unfinished")
    created_ms: int
    code_expires_ms: int = Field(description="Until when its pairing code may be used.")
    paired_ms: int | None = None
    key_id: str | None = Field(None, description="Its counter key, once paired.")


class PairingCodeOut(BaseModel):
    device: DeviceOut
    code: str = Field(description="What the device types (or gets in the link): one use.")
    url: str = Field(description="What the QR code shows: the pairing page with the code.")


class PairIn(Strict):
    code: str = Field(min_length=1, max_length=20, examples=["ABCDE-FGH23"])
    public_key: str = Field(
        min_length=1, max_length=64, description="The device's Ed25519 public key, base64url."
    )


class PairedOut(BaseModel):
    merchant: str = Field(description="The shop's member id (its account: member:<id>).")
    shop: str = Field(description="The shop's trade name.")
    label: str = Field(description="The device's name, as the merchant gave it.")
    key_id: str = Field(description="The counter key registered for the device.")
    csrf: str = Field(description="The CSRF token of the device's new session.")
    session_days: int
