"""What the members' API reads and answers (Pydantic): joining, logging in, device keys,
API tokens, operators and memberships, and whom one pays."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from web.schemas import ONE_LINE, Strict
from web.text import VisibleLine

Name = Field(min_length=1, max_length=120, pattern=ONE_LINE)
Email = Field(min_length=3, max_length=254, pattern=ONE_LINE)
Password = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")
# What a path names: a member id (`camille-dupont-7k2q`), a device key id (base64url).
MEMBER_ID = r"^[A-Za-z0-9_.-]{1,48}$"
KEY_ID = r"^[A-Za-z0-9_-]{1,32}$"


class TradeDetails(Strict):
    trade_name: VisibleLine = Field(min_length=1, max_length=120, pattern=ONE_LINE)
    category: VisibleLine = Field(min_length=1, max_length=60, pattern=ONE_LINE)
    address: VisibleLine = Field(min_length=1, max_length=300, pattern=ONE_LINE)
    siret: str | None = Field(None, pattern=r"^[0-9]{14}$")
    place: VisibleLine | None = Field(
        None,
        min_length=1,
        max_length=80,
        pattern=ONE_LINE,
        description="The town or village of the shop; the node's village if not given.",
    )


class MemberCreate(Strict):
    display_name: VisibleLine = Name
    email: str = Email
    password: str = Password
    role: Literal["resident", "merchant"] = "resident"
    locale: Literal["fr", "en"] = "fr"
    merchant: TradeDetails | None = None


class OperatorCreate(Strict):
    display_name: VisibleLine = Name
    email: str = Email
    password: str = Password
    role: Literal["office", "treasurer", "admin"]
    office: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")


class Login(Strict):
    email: str = Field(min_length=1, max_length=254, pattern=ONE_LINE)
    password: str = Password


class MemberOut(BaseModel):
    id: str
    role: str
    display_name: str
    email: str | None
    office: str | None
    locale: str
    membership_until: date | None
    frozen: bool
    account: str | None


class SessionOut(BaseModel):
    member: MemberOut
    csrf: str


class DeviceKeyCreate(Strict):
    public_key: str = Field(min_length=43, max_length=44, description="Ed25519, base64url")
    label: VisibleLine = Field("", max_length=80, pattern=ONE_LINE)


class DeviceKeyOut(BaseModel):
    key_id: str
    label: str
    registered_ms: int
    revoked_ms: int | None


class TokenCreate(Strict):
    scope: Literal["wallet", "pos"]
    label: VisibleLine = Field(min_length=1, max_length=80, pattern=ONE_LINE)


class TokenOut(BaseModel):
    id: int
    scope: str
    label: str
    created_ms: int


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once: keep it on the device.")


class MembershipUpdate(Strict):
    until: date


class PayeeOut(BaseModel):
    """Someone a wallet may pay, as the payer is shown them before signing."""

    account: str = Field(description="Where the payment goes: `member:<id>`.")
    member_id: str
    name: str = Field(description="A shop's trade name, a resident's name.")
    kind: Literal["shop", "resident"]
    place: str | None = Field(description="A shop's town or village.")
    slug: str | None = Field(description="An approved shop's page: /shops/<slug>.")
