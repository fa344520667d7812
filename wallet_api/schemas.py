"""What the wallet API reads and answers (Pydantic). Amounts are integer cents, always."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Text people type: no control characters (PostgreSQL cannot even store a NUL byte).
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
Name = Field(min_length=1, max_length=120, pattern=ONE_LINE)
Email = Field(min_length=3, max_length=254, pattern=ONE_LINE)
Password = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")
# What a path names: a member id (`camille-dupont-7k2q`), a device key id (base64url).
MEMBER_ID = r"^[A-Za-z0-9_.-]{1,48}$"
KEY_ID = r"^[A-Za-z0-9_-]{1,32}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TradeDetails(Strict):
    trade_name: str = Field(min_length=1, max_length=120, pattern=ONE_LINE)
    category: str = Field(min_length=1, max_length=60, pattern=ONE_LINE)
    address: str = Field(min_length=1, max_length=300, pattern=ONE_LINE)
    siret: str | None = Field(None, pattern=r"^[0-9]{14}$")


class MemberCreate(Strict):
    display_name: str = Name
    email: str = Email
    password: str = Password
    role: Literal["resident", "merchant"] = "resident"
    locale: Literal["fr", "en"] = "fr"
    merchant: TradeDetails | None = None


class OperatorCreate(Strict):
    display_name: str = Name
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
    label: str = Field("", max_length=80, pattern=ONE_LINE)


class DeviceKeyOut(BaseModel):
    key_id: str
    label: str
    registered_ms: int
    revoked_ms: int | None


class TokenCreate(Strict):
    scope: Literal["wallet", "pos"]
    label: str = Field(min_length=1, max_length=80, pattern=ONE_LINE)


class TokenOut(BaseModel):
    id: int
    scope: str
    label: str
    created_ms: int


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once: keep it on the device.")


class Balance(BaseModel):
    member: str
    account: str
    currency: str
    balance: int


class MovementOut(BaseModel):
    transfer_id: int
    kind: str
    amount: int
    counterparty: str | None
    memo: str | None
    created_ms: int


class History(BaseModel):
    items: list[MovementOut]
    next_before: int | None = Field(description="Pass as `before` for the next page.")


class SignedOrderIn(Strict):
    order: dict[str, Any]
    sig: str = Field(min_length=1, max_length=100)


class TransferOut(BaseModel):
    transfer_id: int
    kind: str
    postings: dict[str, int]
    created_ms: int
    replayed: bool


class ReceiptOut(BaseModel):
    transfer_id: int
    leaf: str
    index: int
    tree_size: int
    proof: list[str]
    checkpoint: str


class TransferFound(BaseModel):
    transfer_id: int
    client_id: str = Field(description="The `id` the order was signed with.")
    kind: str
    postings: dict[str, int]
    created_ms: int
    sealed: bool = Field(description="In the signed log already: its receipt can be had.")


class ConsistencyOut(BaseModel):
    from_: int = Field(alias="from", description="The smaller tree size.")
    to: int = Field(description="The larger tree size.")
    proof: list[str] = Field(description="RFC 6962 consistency proof, base64 hashes.")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class CheckpointOut(BaseModel):
    tree_size: int
    created_ms: int
    note: str = Field(description="The signed checkpoint (C2SP signed note).")


class Checkpoints(BaseModel):
    items: list[CheckpointOut]
    next_before: int | None = Field(description="Pass as `before` for the next page.")


class NodeKey(BaseModel):
    owner: str
    key: str
    public_key: str


class NodeInfo(BaseModel):
    origin: str
    currency: str
    keys: list[NodeKey]
    checkpoint: str | None
    tree_size: int


class MembershipUpdate(Strict):
    until: date
