"""Card top-ups with Stripe: starting one, and believing only Stripe's signed webhooks.

A wallet is credited only from a verified Stripe webhook, by a top-up the node signs
naming its rule, after asking Stripe for the PaymentIntent itself. Every node
order made here has a client id derived from Stripe's object ids, so the ledger posts each
once: duplicate, replayed, late and out-of-order events are harmless (an event about a
payment whose `succeeded` event has not come yet credits it first, if Stripe says it
succeeded). Refunds and disputes take units back, hold them in an escrow, or give them back;
what a wallet no longer holds is recorded as owed (the shortfall) and the member's wallet is
frozen.

Writes to our own tables run in short transactions of their own, never around a ledger post
(see `wallet_api/service.py`). A node handles its webhooks one at a time: each reads a card
payment's row, posts, then writes the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.web import Money, Refusal
from wallet_api.auth import Member, now_ms
from wallet_api.cards import repository as repo
from wallet_api.cards import stripe_api

if TYPE_CHECKING:
    from sqlalchemy import RowMapping

    from node.runtime import Node

MEMBER_KEY, NODE_KEY = "sou_member", "sou_node"  # metadata we put on every PaymentIntent


@dataclass(frozen=True)
class Started:
    """How a top-up goes on: to Stripe's Checkout page, or an intent for the app to pay."""

    checkout_url: str | None = None
    payment_intent: str | None = None
    client_secret: str | None = None
    status: str | None = None


# -- starting a top-up ---------------------------------------------------------------------


def available(node: Node) -> bool:
    return stripe_api.configured(node.settings)


def unavailable() -> Refusal:
    return Refusal(
        409,
        "card_topup_unavailable",
        "Card top-ups are not set up on this node yet: the association's admin must give it "
        "the Stripe keys (SOU_STRIPE_SECRET_KEY and SOU_STRIPE_WEBHOOK_SECRET).",
    )


def check_topup(node: Node, member: Member, amount: int) -> None:
    """Refuse a top-up the member may not make (nothing is asked of Stripe then)."""
    settings = node.settings
    if not settings.topup_min <= amount <= settings.topup_max:
        raise Refusal(
            422,
            "topup_amount",
            "A card top-up is from {minimum} to {maximum} euros.",
            minimum=Money(settings.topup_min, ""),
            maximum=Money(settings.topup_max, ""),
            min_cents=settings.topup_min,
            max_cents=settings.topup_max,
        )
    if settings.membership_required and not member.membership_current():
        raise Refusal(
            403,
            "membership_required",
            "Your membership of the association is not up to date: renew it to convert euros.",
        )
    if member.frozen_reason:
        raise Refusal(
            403, "wallet_frozen", "Your wallet is frozen: {reason}", reason=member.frozen_reason
        )
    if not available(node):
        raise unavailable()


def start_topup(node: Node, member: Member, amount: int, *, base_url: str) -> Started:
    """Ask Stripe for a Checkout page or a PaymentIntent for `amount` euro cents. Nothing is
    credited here: only the webhook credits, once Stripe says the money arrived."""
    check_topup(node, member, amount)
    metadata = {MEMBER_KEY: member.id, NODE_KEY: node.ledger.origin}
    if node.settings.stripe_checkout:
        session = stripe_api.create_checkout_session(
            node,
            amount=amount,
            product=f"Top-up {node.ledger.chart.local}",
            metadata=metadata,
            client_reference_id=member.id,
            success_url=f"{base_url}/topup/card/checkout?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=f"{base_url}/topup?cancelled=1",
        )
        return Started(checkout_url=session.url)
    intent = stripe_api.create_payment_intent(node, amount, metadata)
    with node.engine.begin() as conn:
        repo.insert_card_payment(conn, new_card_payment(intent.id, member.id, amount))
    return Started(payment_intent=intent.id, client_secret=intent.client_secret, status="created")


def new_card_payment(intent_id: str, member_id: str, amount: int) -> dict[str, Any]:
    now = now_ms()
    return {
        "payment_intent": intent_id,
        "member_id": member_id,
        "amount": amount,
        "status": "created",
        "created_ms": now,
        "updated_ms": now,
    }


def checkout_returned(node: Node, member: Member, session_id: str) -> str:
    """Back from Stripe's Checkout page: the PaymentIntent it made for this member (its
    card payment is recorded now, so that its page can follow it before the webhook)."""
    if not available(node):
        raise unavailable()
    session = stripe_api.checkout_session(node, session_id)
    if (
        session is None
        or session.payment_intent is None
        or session.client_reference_id != member.id
        or session.metadata.get(NODE_KEY, node.ledger.origin) != node.ledger.origin
    ):
        raise _unknown_payment()
    if session.amount_total:
        with node.engine.begin() as conn:
            repo.insert_card_payment(
                conn, new_card_payment(session.payment_intent, member.id, session.amount_total)
            )
    card_payment(node, member, session.payment_intent)  # someone else's: 404
    return session.payment_intent


def _unknown_payment() -> Refusal:
    return Refusal(404, "unknown_card_payment", "You have no card payment with this reference.")


def card_payment(node: Node, member: Member, intent_id: str) -> RowMapping:
    with node.ledger.reading() as conn:
        row = repo.card_payment(conn, intent_id)
    if row is None or row["member_id"] != member.id:
        raise _unknown_payment()
    return row


def card_payments(node: Node, member: Member) -> list[RowMapping]:
    with node.ledger.reading() as conn:
        return repo.card_payments_of(conn, member.id)


def offices(node: Node) -> list[str]:
    with node.ledger.reading() as conn:
        return repo.office_names(conn)
