"""What the wallet API answers (Pydantic): balance, history, transfers, receipts and the
log's proofs. Amounts are integer cents, always. (What it reads: `web.schemas`.)"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Balance(BaseModel):
    member: str
    account: str
    currency: str
    balance: int


class MovementOut(BaseModel):
    transfer_id: int
    kind: str
    amount: int
    counterparty: str | None = Field(
        description="The other member's id, if a member; else the other account's code."
    )
    memo: str | None
    created_ms: int
    counterparty_name: str | None = Field(
        description="How people know the other side, in the request's language: a shop's "
        "trade name, a member's name, what an escrow is for (a contract, a campaign)."
    )


class History(BaseModel):
    items: list[MovementOut]
    next_before: int | None = Field(description="Pass as `before` for the next page.")


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
