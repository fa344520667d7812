"""The AMAP's API, under /api/v1/amap: thin handlers over `service`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from ledger.signing import SignedOrder
from members.access import Admin, AnyMember, Merchant, WalletHolder, node_of
from plugins.amap import errors, service
from plugins.amap.schemas import (
    AbsenceCreate,
    Contract,
    ContractCreate,
    CoordinatorsUpdate,
    Distribution,
    DistributionCreate,
    OrderCreate,
    Ordered,
    Paid,
    Place,
    PlaceCreate,
    Producer,
    ProducerCreate,
    Product,
    ProductCreate,
    ProductUpdate,
    StockUpdate,
    Subscription,
    SubscriptionCreate,
)
from web.schemas import SignedOrderIn

router = APIRouter(prefix="/api/v1/amap", tags=["amap"])
IdIn = Annotated[int, Path(ge=1, le=2**53)]


def envelope_of(body: SignedOrderIn) -> SignedOrder:
    try:
        return SignedOrder.from_json(body.model_dump())
    except ValueError:
        raise errors.BAD_SIGNATURE_ENCODING() from None


# -- the admin ---------------------------------------------------------------------------


@router.post("/producers", status_code=201, response_model=Producer)
def name_producer(body: ProducerCreate, request: Request, _: Admin) -> Any:
    """Name a merchant member a producer of the AMAP."""
    return service.name_producer(node_of(request), body.member)


@router.post("/places", status_code=201, response_model=Place)
def add_place(body: PlaceCreate, request: Request, _: Admin) -> Any:
    return service.add_place(node_of(request), body.name, body.address)


@router.post("/contracts", status_code=201, response_model=Contract)
def create_contract(body: ContractCreate, request: Request, _: Admin) -> Any:
    """A producer's contract, its coordinators and (a subscription) its fixed basket."""
    fields = body.model_dump(exclude={"basket", "coordinators"})
    basket = {line.product: line.quantity for line in body.basket}
    return service.create_contract(node_of(request), fields, basket, body.coordinators)


@router.put("/contracts/{contract_id}/coordinators", response_model=Contract)
def set_coordinators(
    contract_id: IdIn, body: CoordinatorsUpdate, request: Request, _: Admin
) -> Any:
    """Who coordinates the contract from now on (the list replaces the one before)."""
    return service.set_coordinators(node_of(request), contract_id, body.coordinators)


# -- everyone with a wallet ------------------------------------------------------------------


@router.get("/contracts", response_model=list[Contract])
def contracts(request: Request, _: WalletHolder) -> Any:
    return service.all_contracts(node_of(request))


@router.get("/contracts/{contract_id}", response_model=Contract)
def contract(contract_id: IdIn, request: Request, _: WalletHolder) -> Any:
    return service.contract(node_of(request), contract_id)


# -- producers ---------------------------------------------------------------------------


@router.post("/products", status_code=201, response_model=Product)
def add_product(body: ProductCreate, request: Request, producer: Merchant) -> Any:
    return service.add_product(node_of(request), producer, body.name, body.unit, body.price)


@router.patch("/products/{product_id}", response_model=Product)
def change_product(
    product_id: IdIn, body: ProductUpdate, request: Request, producer: Merchant
) -> Any:
    """A new price applies to what is ordered from now on, never to a line already ordered."""
    changes = body.model_dump(exclude_none=True)
    return service.change_product(node_of(request), producer, product_id, changes)


# -- coordinators ------------------------------------------------------------------------


@router.post("/contracts/{contract_id}/distributions", status_code=201, response_model=Distribution)
def plan_distribution(
    contract_id: IdIn, body: DistributionCreate, request: Request, who: AnyMember
) -> Any:
    limits = {line.product: line.remaining for line in body.stock}
    return service.plan_distribution(
        node_of(request), who, contract_id, body.day, body.place, body.cutoff_ms, limits
    )


@router.put("/distributions/{distribution_id}/stock", response_model=Distribution)
def set_stock(distribution_id: IdIn, body: StockUpdate, request: Request, who: AnyMember) -> Any:
    """The units left to order of some products (the rest stay as they are)."""
    limits = {line.product: line.remaining for line in body.stock}
    return service.set_stock(node_of(request), who, distribution_id, limits)


@router.post("/distributions/{distribution_id}/delivered", response_model=Distribution)
def mark_delivered(distribution_id: IdIn, request: Request, who: AnyMember) -> Any:
    """Each basket's worth goes from its escrow to the producer, once."""
    return service.deliver(node_of(request), who, distribution_id)


@router.post("/distributions/{distribution_id}/cancelled", response_model=Distribution)
def mark_cancelled(distribution_id: IdIn, request: Request, who: AnyMember) -> Any:
    """Each member's share comes back (or stays on the prepaid card)."""
    return service.cancel(node_of(request), who, distribution_id)


# -- members -----------------------------------------------------------------------------


@router.post("/contracts/{contract_id}/subscriptions", status_code=201, response_model=Subscription)
def subscribe(
    contract_id: IdIn,
    request: Request,
    response: Response,
    member: WalletHolder,
    body: SubscriptionCreate | None = None,
) -> Any:
    """Join a contract; its escrow is opened with the subscription. A subscription contract
    starts with its first payment (the season, or the first instalment), signed on your
    device for the escrow this call names without it: until then it is on no sheet, and it
    lapses after an hour."""
    payment = None if body is None or body.payment is None else envelope_of(body.payment)
    found, changed = service.subscribe(node_of(request), member, contract_id, payment)
    if not changed:
        response.status_code = 200
    return found


@router.get("/subscriptions", response_model=list[Subscription])
def my_subscriptions(request: Request, member: WalletHolder) -> Any:
    return service.subscriptions_of(node_of(request), member)


@router.post("/subscriptions/{subscription_id}/payments", status_code=201, response_model=Paid)
def pay(
    subscription_id: IdIn,
    body: SignedOrderIn,
    request: Request,
    response: Response,
    member: WalletHolder,
) -> Any:
    """An escrow payment signed on your device: the season, the next instalment, or what you
    load on a prepaid card."""
    posted = service.pay(node_of(request), member, subscription_id, envelope_of(body))
    if posted.replayed:
        response.status_code = 200
    return Paid(transfer_id=posted.transfer_id, postings=posted.postings)


@router.put("/subscriptions/{subscription_id}/orders/{distribution_id}", response_model=Ordered)
def order(
    subscription_id: IdIn,
    distribution_id: IdIn,
    body: OrderCreate,
    request: Request,
    member: WalletHolder,
) -> Any:
    """What you take at a distribution, before its cut-off: a higher order comes with the
    payment of the difference (free choice), a lower one gets it back."""
    quantities = {line.product: line.quantity for line in body.lines if line.quantity > 0}
    payment = None if body.payment is None else envelope_of(body.payment)
    done = service.order(
        node_of(request), member, subscription_id, distribution_id, quantities, payment
    )
    return Ordered(subscription=done.subscription, change=done.change, transfer_id=done.transfer_id)


@router.post("/subscriptions/{subscription_id}/absences", response_model=Subscription)
def declare_absence(
    subscription_id: IdIn, body: AbsenceCreate, request: Request, member: WalletHolder
) -> Any:
    """A joker: skip a basket before its cut-off, within the contract's limit."""
    return service.declare_absence(node_of(request), member, subscription_id, body.distribution)


@router.post("/subscriptions/{subscription_id}/leave", response_model=Subscription)
def leave(subscription_id: IdIn, request: Request, member: WalletHolder) -> Any:
    """Leave early: what is not yet delivered comes back, per the contract's rule."""
    return service.leave(node_of(request), member, subscription_id)
