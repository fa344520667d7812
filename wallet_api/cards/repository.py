"""Every query of card top-ups: card payments, the Stripe events seen, the offices to list,
members frozen for what a card payment left owed, and the node orders already posted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger import repository as ledger_repo
from ledger.repository import StoredTransfer
from wallet_api.models import card_payments, members, stripe_events


def card_payment(conn: Connection, payment_intent: str) -> RowMapping | None:
    query = select(card_payments).where(card_payments.c.payment_intent == payment_intent)
    return conn.execute(query).mappings().first()


def insert_card_payment(conn: Connection, row: dict[str, Any]) -> bool:
    """Record a card payment; False if one with this PaymentIntent is already there."""
    try:
        with conn.begin_nested():
            conn.execute(insert(card_payments).values(**row))
    except IntegrityError:
        return False
    return True


def update_card_payment(conn: Connection, payment_intent: str, **values: Any) -> None:
    conn.execute(
        update(card_payments)
        .where(card_payments.c.payment_intent == payment_intent)
        .values(**values)
    )


def card_payments_of(conn: Connection, member_id: str, limit: int = 50) -> list[RowMapping]:
    query = (
        select(card_payments)
        .where(card_payments.c.member_id == member_id)
        .order_by(card_payments.c.created_ms.desc())
        .limit(limit)
    )
    return list(conn.execute(query).mappings())


def shortfall_of(conn: Connection, member_id: str) -> int:
    """What a member still owes for card payments taken back after they spent the units."""
    query = select(func.coalesce(func.sum(card_payments.c.shortfall), 0)).where(
        card_payments.c.member_id == member_id
    )
    return int(conn.scalar(query) or 0)


def stripe_event(conn: Connection, event_id: str) -> RowMapping | None:
    query = select(stripe_events).where(stripe_events.c.event_id == event_id)
    return conn.execute(query).mappings().first()


def insert_stripe_event(conn: Connection, row: dict[str, Any]) -> bool:
    """Record an event as handled; False if it already was (two deliveries at once)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(stripe_events).values(**row))
    except IntegrityError:
        return False
    return True


def event_seen(conn: Connection, kind: str, payment_intent: str) -> bool:
    """Whether an event of this type was handled for this PaymentIntent."""
    query = select(func.count()).where(
        stripe_events.c.type == kind, stripe_events.c.payment_intent == payment_intent
    )
    return bool(conn.scalar(query))


def freeze(conn: Connection, member_id: str, reason: str) -> None:
    """Freeze a member's wallet, unless it is already frozen (its reason stands)."""
    conn.execute(
        update(members)
        .where(members.c.id == member_id, members.c.frozen_reason.is_(None))
        .values(frozen_reason=reason)
    )


def thaw(conn: Connection, member_id: str, reason: str) -> None:
    """Lift a freeze made for `reason` (never one made for another reason)."""
    conn.execute(
        update(members)
        .where(members.c.id == member_id, members.c.frozen_reason == reason)
        .values(frozen_reason=None)
    )


def office_names(conn: Connection) -> list[str]:
    """The exchange offices that have an operator, by name."""
    query = (
        select(members.c.office)
        .where(members.c.role == "office", members.c.office.is_not(None))
        .distinct()
        .order_by(members.c.office)
    )
    return [str(name) for name in conn.scalars(query)]


def node_transfer(conn: Connection, client_id: str) -> StoredTransfer | None:
    """The transfer the node posted with this client id, if any."""
    found = ledger_repo.transfers_by_client_id(conn, [("node", client_id)])
    return found.get(("node", client_id))
