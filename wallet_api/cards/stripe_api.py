"""What the node asks Stripe, through the `stripe` library's `StripeClient`, and what it
reads back: plain facts, so that the rules in `service.py` never touch Stripe's objects.

Named `stripe_api` rather than `stripe` so that `import stripe` always means the library.
Any failure to reach Stripe is a 502 the caller may retry (Stripe itself retries webhooks).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import stripe

from wallet_api.cards.errors import BAD_WEBHOOK_EVENT, BAD_WEBHOOK_SIGNATURE, STRIPE_ERROR
from web.refusals import Refusal

if TYPE_CHECKING:
    from stripe.params import PaymentIntentCreateParams
    from stripe.params.checkout import SessionCreateParams

    from runtime.node import Node
    from runtime.settings import Settings

log = logging.getLogger(__name__)

TOLERANCE_S = 300  # a signed webhook older than this is refused (replays)
CURRENCY = "eur"


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent as Stripe has it now."""

    id: str
    amount: int
    currency: str
    status: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    client_secret: str = ""


@dataclass(frozen=True)
class Charge:
    id: str
    payment_intent: str | None
    amount: int
    amount_refunded: int  # cumulative, every refund of the charge so far


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    payment_intent: str | None
    client_reference_id: str | None
    amount_total: int | None
    metadata: Mapping[str, str] = field(default_factory=dict)


def configured(settings: Settings) -> bool:
    """Card top-ups need the secret key (to ask Stripe) and the webhook secret (to believe
    what Stripe tells us)."""
    return bool(settings.stripe_secret_key and settings.stripe_webhook_secret)


def checkout_origin(settings: Settings) -> str | None:
    """Where a top-up form sends the payer when they pay on Stripe's Checkout page (the
    pages' Content-Security-Policy must let a form lead there), if they pay there."""
    if not (configured(settings) and settings.stripe_checkout):
        return None
    if settings.stripe_api_base:  # another Stripe-compatible server serves its own page
        base = urlsplit(settings.stripe_api_base)
        return f"{base.scheme}://{base.netloc}"
    return "https://checkout.stripe.com"


def client(node: Node) -> stripe.StripeClient:
    """One client per node and key (it keeps its HTTP connections)."""
    settings = node.settings
    wanted = (settings.stripe_secret_key, settings.stripe_api_base)
    cached = node.stripe_client
    if cached is not None and cached[0] == wanted:
        return cached[1]
    # The API base is another Stripe-compatible server in tests (localstripe).
    made = stripe.StripeClient(
        settings.stripe_secret_key,
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None,
        max_network_retries=2,
    )
    node.stripe_client = (wanted, made)
    return made


def _unreachable(exc: stripe.StripeError) -> Refusal:
    log.warning("Stripe refused or could not be reached: %s", exc)
    return STRIPE_ERROR()


def _not_found(exc: stripe.StripeError) -> bool:
    return isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404


def _plain(obj: Any) -> dict[str, Any]:
    """A Stripe object as plain JSON data."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return dict(obj) if isinstance(obj, Mapping) else {}


def _intent(data: Mapping[str, Any]) -> Intent:
    metadata = data.get("metadata") or {}
    return Intent(
        id=str(data["id"]),
        amount=int(data.get("amount") or 0),
        currency=str(data.get("currency") or "").lower(),
        status=str(data.get("status") or ""),
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
        client_secret=str(data.get("client_secret") or ""),
    )


def create_payment_intent(node: Node, amount: int, metadata: dict[str, str]) -> Intent:
    params: PaymentIntentCreateParams = {
        "amount": amount,
        "currency": CURRENCY,
        "metadata": metadata,
        # Cards only: their payments settle at once. (Since API version 2026-09-30, which
        # this library speaks, `payment_method_types` is refused: this is its successor.)
        "allowed_payment_method_types": ["card"],
    }
    try:
        made = client(node).v1.payment_intents.create(params=params)
    except stripe.StripeError as exc:
        raise _unreachable(exc) from exc
    return _intent(_plain(made))


def payment_intent(node: Node, intent_id: str) -> Intent | None:
    """The PaymentIntent as Stripe has it now, or None if Stripe does not know it."""
    try:
        found = client(node).v1.payment_intents.retrieve(intent_id)
    except stripe.StripeError as exc:
        if _not_found(exc):
            return None
        raise _unreachable(exc) from exc
    return _intent(_plain(found))


def charge(node: Node, charge_id: str) -> Charge | None:
    try:
        found = _plain(client(node).v1.charges.retrieve(charge_id))
    except stripe.StripeError as exc:
        if _not_found(exc):
            return None
        raise _unreachable(exc) from exc
    intent = found.get("payment_intent")
    if isinstance(intent, Mapping):  # some servers expand it
        intent = intent.get("id")
    return Charge(
        id=str(found["id"]),
        payment_intent=str(intent) if intent else None,
        amount=int(found.get("amount") or 0),
        amount_refunded=int(found.get("amount_refunded") or 0),
    )


def create_checkout_session(
    node: Node,
    *,
    amount: int,
    product: str,
    metadata: dict[str, str],
    client_reference_id: str,
    success_url: str,
    cancel_url: str,
) -> CheckoutSession:
    """A hosted Checkout page for one payment of `amount` euro cents."""
    params: SessionCreateParams = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": CURRENCY,
                    "unit_amount": amount,
                    "product_data": {"name": product},
                },
                "quantity": 1,
            }
        ],
        "allowed_payment_method_types": ["card"],
        "payment_intent_data": {"metadata": metadata},
        "metadata": metadata,
        "client_reference_id": client_reference_id,
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    try:
        made = client(node).v1.checkout.sessions.create(params=params)
    except stripe.StripeError as exc:
        raise _unreachable(exc) from exc
    return _session(_plain(made))


def checkout_session(node: Node, session_id: str) -> CheckoutSession | None:
    try:
        found = client(node).v1.checkout.sessions.retrieve(session_id)
    except stripe.StripeError as exc:
        if _not_found(exc):
            return None
        raise _unreachable(exc) from exc
    return _session(_plain(found))


def _session(data: Mapping[str, Any]) -> CheckoutSession:
    intent = data.get("payment_intent")
    if isinstance(intent, Mapping):
        intent = intent.get("id")
    total = data.get("amount_total")
    return CheckoutSession(
        id=str(data["id"]),
        url=str(data.get("url") or ""),
        payment_intent=str(intent) if intent else None,
        client_reference_id=data.get("client_reference_id"),
        amount_total=int(total) if isinstance(total, int) else None,
        metadata={str(k): str(v) for k, v in dict(data.get("metadata") or {}).items()},
    )


def verified_event(settings: Settings, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The webhook's event, once its `Stripe-Signature` proves Stripe sent it, over these
    very bytes, less than five minutes ago. Anything else is a 400."""
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, settings.stripe_webhook_secret, tolerance=TOLERANCE_S
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        log.warning("webhook refused: %s", exc)
        raise BAD_WEBHOOK_SIGNATURE() from None
    data = event.get("data") if isinstance(event, dict) else None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(data, dict)
        or not isinstance(data.get("object"), dict)
    ):
        raise BAD_WEBHOOK_EVENT()
    return event
