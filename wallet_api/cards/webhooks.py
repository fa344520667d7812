"""Stripe's webhooks: the only way a card top-up credits a wallet, and how refunds and
disputes take units back, hold them, or give them back.

Every node order made here has a client id derived from Stripe's object ids, so the ledger
posts each once: duplicate, replayed, late and out-of-order events are harmless (an event
about a payment whose `succeeded` event has not come yet credits it first, if Stripe says it
succeeded). What a wallet no longer holds is recorded as owed (the shortfall) and the
member's wallet is frozen. A node handles its webhooks one at a time: each reads a card
payment's row, posts, then writes the row.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

from ledger.chart import member_account
from ledger.errors import LedgerError
from ledger.operations import NODE, card_escrow
from ledger.orders import CLIENT_ID
from node.web import Refusal
from wallet_api import repository as wallet_repo
from wallet_api.auth import now_ms
from wallet_api.cards import repository as repo
from wallet_api.cards import stripe_api
from wallet_api.cards.service import (
    MEMBER_KEY,
    NODE_KEY,
    available,
    new_card_payment,
    unavailable,
)
from wallet_api.service import posted_or_existing, sign_as

if TYPE_CHECKING:
    from sqlalchemy import RowMapping

    from node.runtime import Node

CREDIT_RULE = "stripe.payment_intent.succeeded"
REFUND_RULE = "stripe.charge.refunded"
HOLD_RULE = "stripe.charge.dispute.created"
CLOSE_RULE = "stripe.charge.dispute.closed"
# Why a wallet is frozen, in plain words (a msgid: French in cards.po).
FROZEN = (
    "A card payment was taken back after its units were spent: the association must be "
    "repaid before this wallet can pay again."
)
TAKE_ATTEMPTS = 5

# -- the webhook ---------------------------------------------------------------------------

Handler = Callable[["Node", Mapping[str, Any]], tuple[str | None, str]]


def receive_webhook(node: Node, payload: bytes, signature: str | None) -> str:
    """Handle one webhook delivery; what it did, in a few words. A refused event (bad
    signature, unknown intent, changed amount) changes nothing and is not recorded, so that
    Stripe's next delivery is judged anew; a handled one is recorded once by event id."""
    if not available(node):
        raise unavailable()
    event = stripe_api.verified_event(node.settings, payload, signature)
    with _one_at_a_time(node):
        with node.ledger.reading() as conn:
            if repo.stripe_event(conn, event["id"]) is not None:
                return "duplicate: already handled"
        handler = HANDLERS.get(event["type"])
        intent, outcome = (None, "ignored") if handler is None else handler(node, _object(event))
        with node.engine.begin() as conn:
            repo.insert_stripe_event(
                conn,
                {
                    "event_id": event["id"][:255],
                    "type": event["type"][:80],
                    "payment_intent": intent,
                    "outcome": outcome,
                    "received_ms": now_ms(),
                },
            )
    return outcome


def _one_at_a_time(node: Node) -> AbstractContextManager[Any]:
    """The node's webhook lock: deliveries of one event, or of events of one payment, may
    arrive together; each reads a card payment's row, posts, then writes it."""
    lock = node.extras.setdefault("card_webhook_lock", threading.Lock())
    return cast("AbstractContextManager[Any]", lock)


def _object(event: Mapping[str, Any]) -> Mapping[str, Any]:
    found: Mapping[str, Any] = event["data"]["object"]
    return found


def _stripe_id(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,255}", value):
        raise Refusal(400, "bad_webhook_event", "This webhook does not carry a Stripe event.")
    return value


def _unknown_intent() -> Refusal:
    return Refusal(404, "unknown_payment_intent", "This card payment is not a top-up of this node.")


def _payment_succeeded(node: Node, obj: Mapping[str, Any]) -> tuple[str | None, str]:
    intent_id = _stripe_id(obj.get("id"))
    return intent_id, _credit(node, intent_id)


def _credit(node: Node, intent_id: str) -> str:
    """Credit the wallet, once, after checking with Stripe that the money arrived (the
    event's own copy of the intent may be old, or not Stripe's)."""
    intent = stripe_api.payment_intent(node, intent_id)
    if intent is None or intent.metadata.get(NODE_KEY) != node.ledger.origin:
        raise _unknown_intent()
    if intent.status != "succeeded":
        raise Refusal(
            409,
            "payment_not_succeeded",
            "Stripe says this payment has not succeeded (it is {stripe_status}).",
            stripe_status=intent.status,
        )
    if intent.currency != stripe_api.CURRENCY:
        raise Refusal(
            409,
            "wrong_currency",
            "Card top-ups are paid in euros, not in {currency}.",
            currency=intent.currency,
        )
    row = _row_for(node, intent)
    if row["topup_transfer_id"] is not None:
        return "already credited"
    if row["amount"] != intent.amount:
        raise Refusal(
            409,
            "amount_changed",
            "The amount paid ({paid} cents) is not the top-up's amount ({expected} cents).",
            paid=intent.amount,
            expected=row["amount"],
        )
    transfer_id, cents = _node_order(
        node,
        "topup",
        _client_id("card", intent.id),
        CREDIT_RULE,
        to=member_account(row["member_id"]),
        amount=row["amount"],
        source="card",
        ext=intent.id,
    )
    _update(node, intent.id, status="credited", topup_transfer_id=transfer_id)
    return f"credited {cents} cents by transfer {transfer_id}"


def _row_for(node: Node, intent: stripe_api.Intent) -> RowMapping:
    """Our record of the intent; for one made elsewhere (Checkout, the dashboard), made now
    from its metadata if it names a member with a wallet."""
    with node.ledger.reading() as conn:
        row = repo.card_payment(conn, intent.id)
        member = wallet_repo.member(conn, intent.metadata.get(MEMBER_KEY, ""))
    if row is not None:
        return row
    if member is None or member["role"] not in ("resident", "merchant") or intent.amount <= 0:
        raise _unknown_intent()
    with node.engine.begin() as conn:
        repo.insert_card_payment(conn, new_card_payment(intent.id, member["id"], intent.amount))
        made = repo.card_payment(conn, intent.id)
    assert made is not None
    return made


def _payment_failed(node: Node, obj: Mapping[str, Any]) -> tuple[str | None, str]:
    """Show a failed attempt on the member's page (a later success still credits)."""
    intent_id = _stripe_id(obj.get("id"))
    with node.ledger.reading() as conn:
        row = repo.card_payment(conn, intent_id)
    if row is None or row["status"] != "created":
        return intent_id, "nothing to do"
    _update(node, intent_id, status="failed")
    return intent_id, "marked failed"


def _charge_refunded(node: Node, obj: Mapping[str, Any]) -> tuple[str | None, str]:
    """Take back the units of what was refunded and not taken back yet (refunds add up:
    Stripe's `amount_refunded` is the total so far, read from Stripe itself)."""
    charge = stripe_api.charge(node, _stripe_id(obj.get("id")))
    if charge is None or charge.payment_intent is None:
        return None, "not a card top-up: nothing to do"
    row = _credited(node, charge.payment_intent)
    if row is None:
        return charge.payment_intent, "never credited here: nothing to take back"
    if row["status"] in ("disputed", "dispute_lost"):
        # Stripe refuses refunds once a charge is disputed: the ones before were taken
        # back when the dispute opened.
        return charge.payment_intent, "refunds were taken back when the dispute opened"
    return charge.payment_intent, _take_back_refunds(node, row, charge)


def _take_back_refunds(node: Node, row: RowMapping, charge: stripe_api.Charge) -> str:
    refunded = min(charge.amount_refunded, row["amount"])
    due = refunded - row["reversed"] - row["shortfall"]
    if due <= 0:
        return "already taken back"
    intent = row["payment_intent"]
    wallet = member_account(row["member_id"])
    taken = _take(
        node,
        "card_reversal",
        _client_id("card-refund", intent, str(refunded)),
        REFUND_RULE,
        source=wallet,
        due=due,
        ref=row["topup_transfer_id"],
    )
    owed = due - taken
    _update(
        node,
        intent,
        owed_by=row["member_id"] if owed else None,
        status="refunded",
        reversed=row["reversed"] + taken,
        shortfall=row["shortfall"] + owed,
    )
    return f"refund: took back {taken} cents, {owed} owed"


def _dispute_created(node: Node, obj: Mapping[str, Any]) -> tuple[str | None, str]:
    """Hold the disputed units in the top-up's escrow until the dispute is decided."""
    dispute = _stripe_id(obj.get("id"))
    intent = _disputed_intent(node, obj)
    row = _credited(node, intent) if intent else None
    if intent is None or row is None:
        return intent, "never credited here: nothing to hold"
    with node.ledger.reading() as conn:
        closed = repo.event_seen(conn, "charge.dispute.closed", intent)
    if closed or row["status"] in ("disputed", "dispute_lost"):
        return intent, "this dispute was already handled"
    charge = stripe_api.charge(node, _stripe_id(obj.get("charge")))
    if charge is not None:  # refunds made before the dispute, whose events are late
        _take_back_refunds(node, row, charge)
        row = _credited(node, intent) or row
    disputed = min(_cents(obj), row["amount"] - row["reversed"] - row["shortfall"])
    escrow = card_escrow(row["topup_transfer_id"])
    node.ledger.ensure_accounts([escrow])
    held = _take(
        node,
        "card_hold",
        _client_id("card-hold", dispute),
        HOLD_RULE,
        source=member_account(row["member_id"]),
        to=escrow,
        due=disputed,
        ref=row["topup_transfer_id"],
    )
    owed = disputed - held
    _update(
        node,
        intent,
        owed_by=row["member_id"] if owed else None,
        status="disputed",
        held=row["held"] + held,
        shortfall=row["shortfall"] + owed,
    )
    return intent, f"dispute: held {held} cents, {owed} owed"


def _dispute_closed(node: Node, obj: Mapping[str, Any]) -> tuple[str | None, str]:
    """Won: the held units go back to the member. Lost: they leave circulation."""
    dispute = _stripe_id(obj.get("id"))
    intent = _disputed_intent(node, obj)
    row = _credited(node, intent) if intent else None
    if intent is None or row is None:
        return intent, "never credited here: nothing to do"
    status = obj.get("status")
    if status in ("won", "warning_closed"):
        return intent, _dispute_won(node, row, dispute, _cents(obj))
    if status == "lost":
        return intent, _dispute_lost(node, row, dispute, _cents(obj))
    return intent, f"closed as {status}: nothing to do"


def _dispute_won(node: Node, row: RowMapping, dispute: str, disputed: int) -> str:
    if row["status"] != "disputed":
        return "nothing was held"
    escrow = card_escrow(row["topup_transfer_id"])
    released = _take(
        node,
        "card_release",
        _client_id("card-release", dispute),
        CLOSE_RULE,
        source=escrow,
        to=member_account(row["member_id"]),
        due=row["held"],
        ref=row["topup_transfer_id"],
    )
    # What the wallet lacked when the dispute opened is no longer owed.
    forgiven = min(max(disputed - row["held"], 0), row["shortfall"])
    shortfall = row["shortfall"] - forgiven
    _update(
        node,
        row["payment_intent"],
        thaw=row["member_id"],
        status="refunded" if row["reversed"] or shortfall else "credited",
        held=row["held"] - released,
        shortfall=shortfall,
    )
    return f"dispute won: released {released} cents"


def _dispute_lost(node: Node, row: RowMapping, dispute: str, disputed: int) -> str:
    intent, wallet = row["payment_intent"], member_account(row["member_id"])
    if row["status"] == "dispute_lost":
        return "already lost"
    client_id = _client_id("card-lost", dispute)
    if row["status"] == "disputed":
        escrow = card_escrow(row["topup_transfer_id"])
        lost = _take(
            node,
            "card_reversal",
            client_id,
            CLOSE_RULE,
            source=escrow,
            due=row["held"],
            ref=row["topup_transfer_id"],
        )
        _update(
            node,
            intent,
            status="dispute_lost",
            reversed=row["reversed"] + lost,
            held=row["held"] - lost,
        )
        return f"dispute lost: {lost} held cents taken back"
    # Closed before its opening reached us: take the units from the wallet, as a refund.
    due = min(disputed, row["amount"] - row["reversed"] - row["shortfall"])
    taken = _take(
        node,
        "card_reversal",
        client_id,
        CLOSE_RULE,
        source=wallet,
        due=due,
        ref=row["topup_transfer_id"],
    )
    owed = due - taken
    _update(
        node,
        intent,
        owed_by=row["member_id"] if owed else None,
        status="dispute_lost",
        reversed=row["reversed"] + taken,
        shortfall=row["shortfall"] + owed,
    )
    return f"dispute lost: took back {taken} cents, {owed} owed"


def _disputed_intent(node: Node, obj: Mapping[str, Any]) -> str | None:
    intent = obj.get("payment_intent")
    if isinstance(intent, str) and intent:
        return _stripe_id(intent)
    charge = stripe_api.charge(node, _stripe_id(obj.get("charge")))
    return charge.payment_intent if charge else None


def _cents(obj: Mapping[str, Any]) -> int:
    amount = obj.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise Refusal(400, "bad_webhook_event", "This webhook does not carry a Stripe event.")
    return amount


def _credited(node: Node, intent: str) -> RowMapping | None:
    """The card payment, credited. An event about a payment whose own `succeeded` event
    has not come yet (out of order, or our endpoint was down) credits it first, if Stripe
    says it succeeded and it is ours; None if it is not to be credited."""
    with node.ledger.reading() as conn:
        row = repo.card_payment(conn, intent)
    if row is None or row["topup_transfer_id"] is None:
        try:
            _credit(node, intent)
        except Refusal as refusal:
            if refusal.status >= 500:  # Stripe unreachable: let Stripe send this again
                raise
            return None
        with node.ledger.reading() as conn:
            row = repo.card_payment(conn, intent)
    return row if row is not None and row["topup_transfer_id"] is not None else None


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.payment_failed": _payment_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}


# -- the node's orders ---------------------------------------------------------------------


def _client_id(*parts: str) -> str:
    """A client id made of Stripe's ids: the same Stripe fact always names the same order."""
    text = ":".join(parts)
    if CLIENT_ID.match(text):
        return text
    return f"{parts[0]}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def _node_order(node: Node, kind: str, client_id: str, rule: str, **fields: Any) -> tuple[int, int]:
    """Post an order signed by the node, once per client id: (transfer id, cents). If it
    was posted before (an earlier delivery), that one stands."""
    with node.ledger.reading() as conn:
        done = repo.node_transfer(conn, client_id)
    if done is None:
        signed = sign_as(
            node, NODE, kind, client_id, rule=rule, currency=node.ledger.chart.local, **fields
        )
        posted = posted_or_existing(node, NODE, signed)
        if posted is not None:
            return posted.transfer_id, int(fields["amount"])
        with node.ledger.reading() as conn:
            done = repo.node_transfer(conn, client_id)
        assert done is not None, "an idempotency conflict names a stored transfer"
    return done.id, int(done.fields["amount"])


def _take(
    node: Node, kind: str, client_id: str, rule: str, *, source: str, due: int, **fields: Any
) -> int:
    """Move up to `due` cents out of `source` (never below zero): what was moved. Done
    before under this client id, it is not done again."""
    with node.ledger.reading() as conn:
        done = repo.node_transfer(conn, client_id)
    if done is not None:
        return int(done.fields["amount"])
    for _ in range(TAKE_ATTEMPTS):
        cents = min(due, node.ledger.balance(source))
        if cents <= 0:
            return 0
        try:
            fields.update({"from": source, "amount": cents})
            return _node_order(node, kind, client_id, rule, **fields)[1]
        except LedgerError as exc:
            # The member spent in the meantime: look at the wallet again.
            if exc.code != "insufficient_funds" or exc.params.get("account") != source:
                raise
    raise Refusal(409, "wallet_busy", "The wallet kept changing; Stripe will send this again.")


def _update(
    node: Node,
    intent: str,
    *,
    owed_by: str | None = None,
    thaw: str | None = None,
    **values: Any,
) -> None:
    """Write a card payment's new state; freeze a member who now owes, or thaw one who
    owes nothing any more."""
    with node.engine.begin() as conn:
        repo.update_card_payment(conn, intent, updated_ms=now_ms(), **values)
        if owed_by is not None:
            repo.freeze(conn, owed_by, FROZEN)
        if thaw is not None and repo.shortfall_of(conn, thaw) == 0:
            repo.thaw(conn, thaw, FROZEN)
