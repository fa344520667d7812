"""Card top-ups (JSON, under /api/v1), Stripe's webhook, and the treasurer's card shortfalls:
thin handlers over `service.py`, `webhooks.py` and `shortfalls.py`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from members.access import Treasurer, WalletHolder, node_of
from wallet_api.cards import service, shortfalls, webhooks
from wallet_api.cards.schemas import (
    CardPaymentOut,
    CardTopupCreate,
    CardTopupStarted,
    FrozenWalletOut,
    SettlementOut,
    ShortfallOut,
    TakeBackCreate,
    UnfreezeCreate,
    WebhookReceived,
    WriteOffCreate,
)

router = APIRouter(tags=["cards"])

IntentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,255}$")]


def base_url(request: Request) -> str:
    """Where Stripe sends people back: this node as the request reached it."""
    return str(request.base_url).rstrip("/")


@router.post(
    "/api/v1/topups/card",
    status_code=201,
    response_model=CardTopupStarted,
    response_model_exclude_none=True,
)
def start_topup(body: CardTopupCreate, request: Request, member: WalletHolder) -> CardTopupStarted:
    """Top up with a card: `{"checkout_url"}` (Stripe's page) or, without Checkout, a
    PaymentIntent `{"payment_intent", "client_secret", "status"}` for the app to confirm.
    The wallet is credited when Stripe's webhook says the payment succeeded."""
    started = service.start_topup(node_of(request), member, body.amount, base_url=base_url(request))
    return CardTopupStarted(**vars(started))


@router.get("/api/v1/topups/card", response_model=list[CardPaymentOut])
def my_card_payments(request: Request, member: WalletHolder) -> list[CardPaymentOut]:
    """Your card top-ups, newest first."""
    return [CardPaymentOut(**row) for row in service.card_payments(node_of(request), member)]


@router.get("/api/v1/topups/card/{payment_intent}", response_model=CardPaymentOut)
def card_payment(
    payment_intent: IntentId, request: Request, member: WalletHolder
) -> CardPaymentOut:
    """One of your card top-ups: `status` is `credited` once the units are in your wallet."""
    return CardPaymentOut(**service.card_payment(node_of(request), member, payment_intent))


async def raw_body(request: Request) -> bytes:
    """The webhook's bytes exactly as sent: Stripe's signature covers them."""
    return await request.body()


# The body is read raw (the signature covers its bytes); the schema says what it holds.
_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "title": "StripeEvent"}}},
    }
}


@router.post(
    "/stripe/webhook",
    response_model=WebhookReceived,
    tags=["stripe"],
    openapi_extra=_EVENT_BODY,
)
def stripe_webhook(
    request: Request,
    payload: Annotated[bytes, Depends(raw_body)],
    stripe_signature: Annotated[str | None, Header()] = None,
) -> WebhookReceived:
    """Stripe's events (signed with the webhook secret; no session, no CSRF token):
    payments succeeded or failed, refunds, disputes opened and closed."""
    outcome = webhooks.receive_webhook(node_of(request), payload, stripe_signature)
    return WebhookReceived(outcome=outcome)


# -- the treasurer: card shortfalls ----------------------------------------------------------

MemberId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,47}$")]


@router.get(
    "/api/v1/treasury/card-shortfalls", response_model=list[ShortfallOut], tags=["treasury"]
)
def card_shortfalls(request: Request, treasurer: Treasurer) -> list[ShortfallOut]:
    """Card payments taken back after their units were spent: who owes what, since when,
    and what the member's wallet holds now. The oldest first."""
    return [ShortfallOut(**asdict(s)) for s in shortfalls.shortfalls(node_of(request))]


@router.post(
    "/api/v1/treasury/card-shortfalls/{payment_intent}/take-backs",
    status_code=201,
    response_model=SettlementOut,
    tags=["treasury"],
)
def take_back(
    payment_intent: IntentId,
    body: TakeBackCreate,
    request: Request,
    response: Response,
    treasurer: Treasurer,
) -> SettlementOut:
    """Take back what the member's wallet holds now, up to what the payment owes (the
    wallet thaws when nothing is owed any more). The same `id` again answers the first
    result, with status 200."""
    done = shortfalls.take_back(node_of(request), treasurer, body.id, payment_intent)
    return _settled(done, response)


@router.post(
    "/api/v1/treasury/card-shortfalls/{payment_intent}/write-off",
    status_code=201,
    response_model=SettlementOut,
    tags=["treasury"],
)
def write_off(
    payment_intent: IntentId,
    body: WriteOffCreate,
    request: Request,
    response: Response,
    treasurer: Treasurer,
) -> SettlementOut:
    """The association bears what the payment owes: one `card_write_off` transfer, signed
    with the treasurer's key, puts its euros into the reserve so that the units the member
    spent stay backed; the member's balance does not change and the wallet thaws. The same
    `id` again answers the first result, with status 200."""
    node = node_of(request)
    done = shortfalls.write_off(node, treasurer, body.id, payment_intent, body.reason)
    return _settled(done, response)


@router.get(
    "/api/v1/treasury/frozen-wallets", response_model=list[FrozenWalletOut], tags=["treasury"]
)
def frozen_wallets(request: Request, treasurer: Treasurer) -> list[FrozenWalletOut]:
    """Members whose wallet is frozen, with what they owe for card payments."""
    return [FrozenWalletOut(**asdict(f)) for f in shortfalls.frozen_wallets(node_of(request))]


@router.post(
    "/api/v1/treasury/frozen-wallets/{member_id}/unfrozen",
    status_code=201,
    response_model=SettlementOut,
    tags=["treasury"],
)
def unfreeze(
    member_id: MemberId,
    body: UnfreezeCreate,
    request: Request,
    response: Response,
    treasurer: Treasurer,
) -> SettlementOut:
    """Unfreeze a wallet by hand, saying why: refused while its member owes anything for
    card payments."""
    done = shortfalls.unfreeze(node_of(request), treasurer, body.id, member_id, body.reason)
    return _settled(done, response)


@router.get(
    "/api/v1/treasury/card-settlements", response_model=list[SettlementOut], tags=["treasury"]
)
def card_settlements(request: Request, treasurer: Treasurer) -> list[SettlementOut]:
    """What the treasurers did about card shortfalls, newest first: who, when, why."""
    return [SettlementOut(**asdict(s)) for s in shortfalls.settlements(node_of(request))]


def _settled(done: shortfalls.Settlement, response: Response) -> SettlementOut:
    if done.replayed:
        response.status_code = 200
    return SettlementOut(**asdict(done))
