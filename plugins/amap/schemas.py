"""The AMAP's API bodies (Pydantic): `X` out, `XCreate` in."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from web.schemas import ONE_LINE, SignedOrderIn, Strict

Cents = Field(gt=0, le=10_000_000, description="In cents of the local unit.")
Quantity = Field(ge=0, le=10_000)
MemberId = Field(min_length=1, max_length=64, pattern=ONE_LINE)


class ProducerCreate(Strict):
    member: str = MemberId


class Producer(BaseModel):
    member: str
    name: str


class PlaceCreate(Strict):
    name: str = Field(min_length=1, max_length=80, pattern=ONE_LINE)
    address: str = Field("", max_length=200, pattern=ONE_LINE)


class Place(BaseModel):
    id: int
    name: str
    address: str


class ProductCreate(Strict):
    name: str = Field(min_length=1, max_length=80, pattern=ONE_LINE)
    unit: str = Field(min_length=1, max_length=20, pattern=ONE_LINE)
    price: int = Cents


class ProductUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=80, pattern=ONE_LINE)
    unit: str | None = Field(None, min_length=1, max_length=20, pattern=ONE_LINE)
    price: int | None = Field(None, gt=0, le=10_000_000)


class Product(BaseModel):
    id: int
    producer: str
    name: str
    unit: str
    price: int


class BasketLine(Strict):
    product: int = Field(ge=1, le=2**53)
    quantity: int = Field(gt=0, le=10_000)


class ContractCreate(Strict):
    producer: str = MemberId
    title: str = Field(min_length=1, max_length=120, pattern=ONE_LINE)
    nature: Literal["subscription", "free_choice", "prepaid"]
    season: str = Field(min_length=1, max_length=40, pattern=ONE_LINE)
    jokers: int = Field(0, ge=0, le=52, description="Absences a member may declare.")
    joker_rule: Literal["carry", "refund"] = "carry"
    leave_rule: Literal["all", "notice"] = "all"
    notice: int = Field(0, ge=0, le=52, description="Distributions still delivered on leaving.")
    instalments: int = Field(
        1,
        ge=1,
        le=12,
        description="The season is cut in this many instalments of as many distributions "
        "each; each is due before the cut-off of the first distribution it covers.",
    )
    basket: list[BasketLine] = Field(default_factory=list, max_length=50)
    coordinators: list[str] = Field(default_factory=list, max_length=20)


class CoordinatorsUpdate(Strict):
    coordinators: list[str] = Field(max_length=20, description="Member ids; the list replaces.")


class Contract(BaseModel):
    id: int
    producer: str
    title: str
    nature: str
    season: str
    jokers: int
    joker_rule: str
    leave_rule: str
    notice: int
    instalments: int
    basket_price: int = 0
    coordinators: list[str] = []


class StockLine(Strict):
    product: int = Field(ge=1, le=2**53)
    remaining: int = Field(ge=0, le=100_000)


class DistributionCreate(Strict):
    day: date
    place: int = Field(ge=1, le=2**53)
    cutoff_ms: int = Field(ge=0, le=2**53, description="Orders close then (ms since 1970).")
    stock: list[StockLine] = Field(default_factory=list, max_length=50)


class StockUpdate(Strict):
    stock: list[StockLine] = Field(min_length=1, max_length=50)


class Distribution(BaseModel):
    id: int
    contract: int
    place: int
    day: str
    cutoff_ms: int
    state: str
    stock: dict[int, int]


class Subscription(BaseModel):
    id: int
    contract: int
    title: str
    nature: str
    state: str
    escrow: str
    total: int
    credit: int
    paid: int
    held: int
    released: int
    refunded: int
    due: int
    next_instalment: int
    next_due_ms: int | None = None
    schedule: list[dict[str, Any]] = []
    unpaid: list[str] = []
    jokers_used: int
    baskets: list[dict[str, Any]]


class SubscriptionCreate(Strict):
    payment: SignedOrderIn | None = Field(
        None, description="The first payment: the whole season, or the first instalment."
    )


class OrderLine(Strict):
    product: int = Field(ge=1, le=2**53)
    quantity: int = Quantity


class OrderCreate(Strict):
    lines: list[OrderLine] = Field(max_length=50)
    payment: SignedOrderIn | None = None


class Ordered(BaseModel):
    subscription: Subscription
    change: int
    transfer_id: int | None


class AbsenceCreate(Strict):
    distribution: int = Field(ge=1, le=2**53)


class Paid(BaseModel):
    transfer_id: int
    postings: dict[str, int]
