"""Card top-ups (JSON, under /api/v1) and Stripe's webhook: thin handlers over `service.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request

from wallet_api.auth import WalletHolder, node_of
from wallet_api.cards import service, webhooks
from wallet_api.cards.schemas import (
    CardPaymentOut,
    CardTopupCreate,
    CardTopupStarted,
    WebhookReceived,
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
