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
(see `wallet_api/service.py`). A node handles its webhooks, and the treasurer's settlements
(`shortfalls.py`), one at a time (`one_at_a_time`): each reads a card payment's row, posts,
then writes the row. The helpers they share are here: node orders posted once per client id
(`order`, `take`), and a card payment's counters moved with the freeze that follows
(`change`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.errors import LedgerError
from ledger.operations import NODE
from ledger.orders import CLIENT_ID
from members.access import Member, now_ms
from members.errors import WALLET_FROZEN
from members.service import freezing
from runtime.database import AdvisoryTurns, Turns
from runtime.signing import post, sign_as
from wallet_api.cards import repository as repo
from wallet_api.cards import stripe_api
from wallet_api.cards.errors import (
    CARD_TOPUP_UNAVAILABLE,
    MEMBERSHIP_REQUIRED,
    TOPUP_AMOUNT,
    UNKNOWN_CARD_PAYMENT,
    WALLET_BUSY,
)
from web.refusals import Money

if TYPE_CHECKING:
    from sqlalchemy import Connection, RowMapping

    from runtime.node import Node

MEMBER_KEY, NODE_KEY = "sou_member", "sou_node"  # metadata we put on every PaymentIntent
# Why a wallet is frozen, in plain words (a msgid: French in cards.po).
FROZEN = (
    "A card payment was taken back after its units were spent: the association must be "
    "repaid before this wallet can pay again."
)
TAKE_ATTEMPTS = 5
CARD_PAYMENTS_LOCK = 0x50550002  # PostgreSQL advisory lock id (the sealer's is 0x50550001)
_MAKING_TURNS = threading.Lock()


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


def check_topup(node: Node, member: Member, amount: int) -> None:
    """Refuse a top-up the member may not make (nothing is asked of Stripe then)."""
    settings = node.settings
    if not settings.topup_min <= amount <= settings.topup_max:
        raise TOPUP_AMOUNT(
            minimum=Money(settings.topup_min, ""),
            maximum=Money(settings.topup_max, ""),
            min_cents=settings.topup_min,
            max_cents=settings.topup_max,
        )
    if settings.membership_required and not member.membership_current():
        raise MEMBERSHIP_REQUIRED()
    if member.frozen_reason:
        raise WALLET_FROZEN(reason=member.frozen_reason)
    if not available(node):
        raise CARD_TOPUP_UNAVAILABLE()


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
        raise CARD_TOPUP_UNAVAILABLE()
    session = stripe_api.checkout_session(node, session_id)
    if (
        session is None
        or session.payment_intent is None
        or session.client_reference_id != member.id
        or session.metadata.get(NODE_KEY, node.ledger.origin) != node.ledger.origin
    ):
        raise UNKNOWN_CARD_PAYMENT()
    if session.amount_total:
        with node.engine.begin() as conn:
            repo.insert_card_payment(
                conn, new_card_payment(session.payment_intent, member.id, session.amount_total)
            )
    card_payment(node, member, session.payment_intent)  # someone else's: 404
    return session.payment_intent


def card_payment(node: Node, member: Member, intent_id: str) -> RowMapping:
    with node.ledger.reading() as conn:
        row = repo.card_payment(conn, intent_id)
    if row is None or row["member_id"] != member.id:
        raise UNKNOWN_CARD_PAYMENT()
    return row


def card_payments(node: Node, member: Member) -> list[RowMapping]:
    with node.ledger.reading() as conn:
        return repo.card_payments_of(conn, member.id)


def offices(node: Node) -> list[str]:
    with node.ledger.reading() as conn:
        return repo.office_names(conn)


# -- what Stripe's events and the treasurer do to a card payment ------------------------------


def one_at_a_time(node: Node) -> AbstractContextManager[None]:
    """The node's lock over card payments: webhook deliveries (of one event, or of events of
    one payment) and the treasurer's settlements each read a card payment's row, post, then
    write the row. It holds among the threads and the processes of the node (`sou serve`
    runs several): a thread lock inside a process; between processes, an advisory lock of
    the PostgreSQL database (whichever machine they run on), or on SQLite, whose processes
    share a machine, an exclusive `flock` beside it."""
    if node.card_payments_turns is None:
        with _MAKING_TURNS:  # one lock per node, even when its first two turns are asked at once
            if node.card_payments_turns is None:
                node.card_payments_turns = _turns(node)
    return node.card_payments_turns


def _turns(node: Node) -> AdvisoryTurns | Turns:
    if node.engine.dialect.name == "postgresql":
        return AdvisoryTurns(node.engine, CARD_PAYMENTS_LOCK)
    return Turns(Path(node.settings.data_dir) / "card-payments.lock")


def unclaimed(row: RowMapping) -> int:
    """Units of a card payment neither taken back, nor held, nor owed: what may still be."""
    return int(row["amount"] - row["reversed"] - row["held"] - row["shortfall"])


def client_id(*parts: str) -> str:
    """A client id made of Stripe's ids (or a settlement's): the same fact always names the
    same order."""
    text = ":".join(parts)
    if CLIENT_ID.match(text):
        return text
    return f"{parts[0]}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def order(
    node: Node, owner: str, kind: str, client_id: str, *, at_once: bool = False, **fields: Any
) -> tuple[int, int]:
    """Post an order signed by the node (naming its rule) or an operator's role key, once per
    client id: (transfer id, cents). If it was posted before, that one stands. `at_once`
    posts in this thread rather than through the poster's queue: the caller then knows,
    before it lets go of the lock, whether it was posted."""
    with node.ledger.reading() as conn:
        done = repo.transfer_of(conn, owner, client_id)
    if done is None:
        signed = sign_as(node, owner, kind, client_id, **fields)
        try:
            posted = node.ledger.transfer(signed) if at_once else post(node, signed)
            return posted.transfer_id, int(fields.get("amount", 0))
        except LedgerError as exc:
            if exc.code != "idempotency_conflict":  # else: posted meanwhile, it stands
                raise
        with node.ledger.reading() as conn:
            done = repo.transfer_of(conn, owner, client_id)
        assert done is not None, "an idempotency conflict names a stored transfer"
    return done.id, int(done.fields.get("amount", 0))


def take(
    node: Node,
    kind: str,
    client_id: str,
    rule: str,
    *,
    source: str,
    due: int,
    at_once: bool = False,
    **fields: Any,
) -> tuple[int | None, int]:
    """Move up to `due` units out of `source` (never below zero) by a node order: (its
    transfer id, the units moved); (None, 0) if there was nothing to move. Done before under
    this client id, it is not done again."""
    with node.ledger.reading() as conn:
        done = repo.transfer_of(conn, NODE, client_id)
    if done is not None:
        return done.id, int(done.fields["amount"])
    if due <= 0:
        return None, 0
    local = node.ledger.chart.local
    for _ in range(TAKE_ATTEMPTS):
        cents = min(due, node.ledger.balance(source))
        if cents <= 0:
            return None, 0
        moved = {"from": source, "amount": cents, "rule": rule, "currency": local}
        try:
            return order(node, NODE, kind, client_id, at_once=at_once, **fields, **moved)
        except LedgerError as exc:
            # The member spent in the meantime: look at the wallet again.
            if exc.code != "insufficient_funds" or exc.params.get("account") != source:
                raise
    raise WALLET_BUSY()


def change(
    node: Node,
    intent: str,
    *,
    status: str | None = None,
    reversed: int = 0,
    held: int = 0,
    shortfall: int = 0,
    also: Callable[[Connection], None] | None = None,
) -> None:
    """Write what happened to a card payment: its counters moved by these cents, its new
    status, and `also`'s writes, in one transaction. A member who now owes more is frozen;
    one who owes nothing any more is thawed."""
    now = now_ms()
    with freezing(node) as freezes:
        conn = freezes.conn
        before = repo.card_payment(conn, intent)
        assert before is not None, intent
        repo.move_card_payment(
            conn, intent, status=status, reversed=reversed, held=held, shortfall=shortfall, at=now
        )
        if before["shortfall"] == 0 and shortfall > 0:
            repo.shortfall_began(conn, intent, now)
        if also is not None:
            also(conn)
        member = before["member_id"]
        if shortfall > 0:
            freezes.freeze(member, FROZEN)
        elif shortfall < 0 and repo.shortfall_of(conn, member) == 0:
            freezes.thaw(member, FROZEN)
