"""Stripe's webhooks: the only way a card top-up credits a wallet, and how refunds and
disputes take units back, hold them, or give them back.

Every node order made here has a client id derived from Stripe's object ids, so the ledger
posts each once: duplicate, replayed, late and out-of-order events are harmless (an event
about a payment whose `succeeded` event has not come yet credits it first, if Stripe says it
succeeded). What a wallet no longer holds is recorded as owed (the shortfall) and the
member's wallet is frozen. Each dispute is followed by its Stripe id (a charge may be
disputed again once a dispute closed). A node handles its webhooks one at a time, and the
treasurer's settlements in turn (`service.one_at_a_time`): each reads a card payment's row,
posts, then writes the row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ledger.chart import member_account
from ledger.operations import NODE, card_escrow
from members import repository as members_repo
from members.access import now_ms
from wallet_api.cards import repository as repo
from wallet_api.cards import stripe_api
from wallet_api.cards.errors import (
    AMOUNT_CHANGED,
    BAD_WEBHOOK_EVENT,
    CARD_TOPUP_UNAVAILABLE,
    PAYMENT_NOT_SUCCEEDED,
    UNKNOWN_PAYMENT_INTENT,
    WRONG_CURRENCY,
)
from wallet_api.cards.service import (
    MEMBER_KEY,
    NODE_KEY,
    available,
    change,
    client_id,
    new_card_payment,
    one_at_a_time,
    order,
    take,
    unclaimed,
)
from web.refusals import Refusal

if TYPE_CHECKING:
    from sqlalchemy import Connection, RowMapping

    from runtime.node import Node

CREDIT_RULE = "stripe.payment_intent.succeeded"
REFUND_RULE = "stripe.charge.refunded"
HOLD_RULE = "stripe.charge.dispute.created"
CLOSE_RULE = "stripe.charge.dispute.closed"

# -- the webhook ---------------------------------------------------------------------------

Handler = Callable[["Node", Mapping[str, Any]], tuple[str | None, str]]


def receive_webhook(node: Node, payload: bytes, signature: str | None) -> str:
    """Handle one webhook delivery; what it did, in a few words. A refused event (bad
    signature, unknown intent, changed amount) changes nothing and is not recorded, so that
    Stripe's next delivery is judged anew; a handled one is recorded once by event id."""
    if not available(node):
        raise CARD_TOPUP_UNAVAILABLE()
    event = stripe_api.verified_event(node.settings, payload, signature)
    with one_at_a_time(node):
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


def _object(event: Mapping[str, Any]) -> Mapping[str, Any]:
    found: Mapping[str, Any] = event["data"]["object"]
    return found


def _stripe_id(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,255}", value):
        raise BAD_WEBHOOK_EVENT()
    return value


def _payment_succeeded(node: Node, obj: Mapping[str, Any]) -> tuple[str | None, str]:
    intent_id = _stripe_id(obj.get("id"))
    return intent_id, _credit(node, intent_id)


def _credit(node: Node, intent_id: str) -> str:
    """Credit the wallet, once, after checking with Stripe that the money arrived (the
    event's own copy of the intent may be old, or not Stripe's)."""
    intent = stripe_api.payment_intent(node, intent_id)
    if intent is None or intent.metadata.get(NODE_KEY) != node.ledger.origin:
        raise UNKNOWN_PAYMENT_INTENT()
    if intent.status != "succeeded":
        raise PAYMENT_NOT_SUCCEEDED(stripe_status=intent.status)
    if intent.currency != stripe_api.CURRENCY:
        raise WRONG_CURRENCY(currency=intent.currency)
    row = _row_for(node, intent)
    if row["topup_transfer_id"] is not None:
        return "already credited"
    if row["amount"] != intent.amount:
        raise AMOUNT_CHANGED(paid=intent.amount, expected=row["amount"])
    transfer_id, cents = order(
        node,
        NODE,
        "topup",
        client_id("card", intent.id),
        rule=CREDIT_RULE,
        currency=node.ledger.chart.local,
        to=member_account(row["member_id"]),
        amount=row["amount"],
        source="card",
        ext=intent.id,
    )
    _set(node, intent.id, status="credited", topup_transfer_id=transfer_id)
    return f"credited {cents} cents by transfer {transfer_id}"


def _row_for(node: Node, intent: stripe_api.Intent) -> RowMapping:
    """Our record of the intent; for one made elsewhere (Checkout, the dashboard), made now
    from its metadata if it names a member with a wallet."""
    with node.ledger.reading() as conn:
        row = repo.card_payment(conn, intent.id)
        member = members_repo.member(conn, intent.metadata.get(MEMBER_KEY, ""))
    if row is not None:
        return row
    if member is None or member["role"] not in ("resident", "merchant") or intent.amount <= 0:
        raise UNKNOWN_PAYMENT_INTENT()
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
    _set(node, intent_id, status="failed")
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
    return charge.payment_intent, _take_back_refunds(node, row, charge)


def _take_back_refunds(node: Node, row: RowMapping, charge: stripe_api.Charge) -> str:
    """Stripe counts refunds apart from disputes lost; the euros it took back are both, and
    the units taken back are at most the top-up's: the same euros are never taken twice
    (a refund made before a dispute, whose event comes after it, takes nothing more)."""
    intent = row["payment_intent"]
    with node.ledger.reading() as conn:
        lost = repo.lost_disputes(conn, intent)
    gone = min(charge.amount_refunded + lost, row["amount"])
    due = min(gone - row["reversed"] - row["shortfall"], unclaimed(row))
    if due <= 0:
        return "already taken back"
    # The same facts (refunded so far, lost so far) always name the same order.
    facts = (intent, str(charge.amount_refunded)) + ((str(lost),) if lost else ())
    status = row["status"] if row["status"] in ("disputed", "dispute_lost") else "refunded"
    taken, owed = _take_back(node, row, client_id("card-refund", *facts), REFUND_RULE, due, status)
    return f"refund: took back {taken} cents, {owed} owed"


def _take_back(
    node: Node,
    row: RowMapping,
    order_id: str,
    rule: str,
    due: int,
    status: str,
    dispute: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Take up to `due` units of a card payment back from its member's wallet, never below
    zero (a refund, or a dispute lost before its opening reached us): (taken, owed). What
    the wallet lacks is owed: the payment's shortfall grows and the wallet is frozen.
    `dispute`, the row of the dispute lost, is written with it."""
    _, taken = take(
        node,
        "card_reversal",
        order_id,
        rule,
        source=member_account(row["member_id"]),
        due=due,
        ref=row["topup_transfer_id"],
    )
    owed = due - taken
    also = None
    if dispute is not None:
        record = {**dispute, "owed": owed}
        also = lambda conn: repo.insert_dispute(conn, record)  # noqa: E731
    change(node, row["payment_intent"], status=status, reversed=taken, shortfall=owed, also=also)
    return taken, owed


def _dispute_created(node: Node, obj: Mapping[str, Any]) -> tuple[str | None, str]:
    """Hold the disputed units in the top-up's escrow until the dispute is decided. Each
    dispute is handled once, by its id: a charge may be disputed again after one closed."""
    dispute = _stripe_id(obj.get("id"))
    intent = _disputed_intent(node, obj)
    row = _credited(node, intent) if intent else None
    if intent is None or row is None:
        return intent, "never credited here: nothing to hold"
    with node.ledger.reading() as conn:
        if repo.dispute(conn, dispute) is not None:
            return intent, "this dispute was already handled"
    charge = stripe_api.charge(node, _stripe_id(obj.get("charge")))
    if charge is not None:  # refunds made before the dispute, whose events are late
        _take_back_refunds(node, row, charge)
        row = _credited(node, intent) or row
    amount = _cents(obj)
    disputed = min(amount, unclaimed(row))
    escrow = card_escrow(row["topup_transfer_id"])
    node.ledger.ensure_accounts([escrow])
    _, held = take(
        node,
        "card_hold",
        client_id("card-hold", dispute),
        HOLD_RULE,
        source=member_account(row["member_id"]),
        to=escrow,
        due=disputed,
        ref=row["topup_transfer_id"],
    )
    owed = disputed - held
    record = {
        "dispute_id": dispute,
        "payment_intent": intent,
        "amount": amount,
        "held": held,
        "owed": owed,
        "status": "open",
        "opened_ms": now_ms(),
    }
    change(
        node,
        intent,
        status="disputed",
        held=held,
        shortfall=owed,
        also=lambda conn: repo.insert_dispute(conn, record),
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
    if status not in ("won", "warning_closed", "lost"):
        return intent, f"closed as {status}: nothing to do"
    lost, amount = status == "lost", _cents(obj)
    with node.ledger.reading() as conn:
        opened = _dispute_row(conn, dispute, intent)
    if opened is None:
        return intent, _closed_unopened(node, row, dispute, amount, lost)
    if opened["status"] != "open":
        return intent, "this dispute was already closed"
    if lost:
        return intent, _dispute_lost(node, row, opened, dispute, amount)
    return intent, _dispute_won(node, row, opened, dispute, amount)


def _dispute_row(conn: Connection, dispute: str, intent: str) -> RowMapping | None:
    """The dispute's row; for a dispute opened before the node kept one per dispute, the
    row made for it by migration 0005 (`legacy:<payment intent>`), while open."""
    found = repo.dispute(conn, dispute)
    if found is None:
        legacy = repo.dispute(conn, f"legacy:{intent}")
        found = legacy if legacy is not None and legacy["status"] == "open" else None
    return found


def _dispute_won(node: Node, row: RowMapping, opened: RowMapping, dispute: str, amount: int) -> str:
    _, released = take(
        node,
        "card_release",
        client_id("card-release", dispute),
        CLOSE_RULE,
        source=card_escrow(row["topup_transfer_id"]),
        to=member_account(row["member_id"]),
        due=opened["held"],
        ref=row["topup_transfer_id"],
    )
    owed = opened["owed"]
    if opened["dispute_id"].startswith("legacy:"):  # only the part the dispute claimed
        owed = min(owed, max(amount - opened["held"], 0))
    # What the wallet lacked when the dispute opened is no longer owed.
    forgiven = min(owed, row["shortfall"])
    with node.ledger.reading() as conn:
        lost_before = repo.lost_disputes(conn, row["payment_intent"]) > 0
    status = "refunded" if row["reversed"] or row["shortfall"] > forgiven else "credited"
    change(
        node,
        row["payment_intent"],
        status="dispute_lost" if lost_before else status,
        held=-released,
        shortfall=-forgiven,
        also=_close(opened, dispute, "won", amount),
    )
    return f"dispute won: released {released} cents"


def _dispute_lost(
    node: Node, row: RowMapping, opened: RowMapping, dispute: str, amount: int
) -> str:
    """The held units leave circulation; what the wallet lacked stays owed."""
    _, lost = take(
        node,
        "card_reversal",
        client_id("card-lost", dispute),
        CLOSE_RULE,
        source=card_escrow(row["topup_transfer_id"]),
        due=opened["held"],
        ref=row["topup_transfer_id"],
    )
    change(
        node,
        row["payment_intent"],
        status="dispute_lost",
        reversed=lost,
        held=-lost,
        also=_close(opened, dispute, "lost", amount),
    )
    return f"dispute lost: {lost} held cents taken back"


def _close(opened: RowMapping, dispute: str, status: str, amount: int) -> Any:
    def close(conn: Connection) -> None:
        repo.close_dispute(
            conn, opened["dispute_id"], dispute, status=status, amount=amount, closed_ms=now_ms()
        )

    return close


def _closed_unopened(node: Node, row: RowMapping, dispute: str, amount: int, lost: bool) -> str:
    """A dispute closed before its opening reached us: nothing was held. Won, nothing to do;
    lost, its units are taken from the wallet, as a refund's."""
    record = {
        "dispute_id": dispute,
        "payment_intent": row["payment_intent"],
        "amount": amount,
        "status": "lost" if lost else "won",
        "closed_ms": now_ms(),
    }
    if not lost:
        with node.engine.begin() as conn:
            repo.insert_dispute(conn, record)
        return "dispute won before its opening reached us: nothing was held"
    due = min(amount, unclaimed(row))
    order_id = client_id("card-lost", dispute)
    taken, owed = _take_back(node, row, order_id, CLOSE_RULE, due, "dispute_lost", record)
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
        raise BAD_WEBHOOK_EVENT()
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


def _set(node: Node, intent: str, **values: Any) -> None:
    with node.engine.begin() as conn:
        repo.update_card_payment(conn, intent, updated_ms=now_ms(), **values)
