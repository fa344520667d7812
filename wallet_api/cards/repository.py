"""Every query of card top-ups: card payments, their disputes and shortfalls, the Stripe
events seen, the offices to list, members frozen for what a card payment left owed, the
treasurer's settlements, and the orders already posted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger import repository as ledger_repo
from ledger.repository import StoredTransfer
from members.models import WALLET_ROLES, members
from wallet_api.cards.models import card_disputes, card_settlements, card_shortfalls
from wallet_api.models import card_payments, stripe_events


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


def move_card_payment(
    conn: Connection,
    payment_intent: str,
    *,
    status: str | None,
    reversed: int,
    held: int,
    shortfall: int,
    at: int,
) -> None:
    """Add these cents to a card payment's counters (in the database, so that no write is
    lost to another made meanwhile: its CHECKs refuse what would go wrong)."""
    c = card_payments.c
    values: dict[str, Any] = {"updated_ms": at}
    for column, cents in ((c.reversed, reversed), (c.held, held), (c.shortfall, shortfall)):
        if cents:
            values[column.name] = column + cents
    if status is not None:
        values["status"] = status
    conn.execute(update(card_payments).where(c.payment_intent == payment_intent).values(values))


def shortfall_began(conn: Connection, payment_intent: str, at: int) -> None:
    """A card payment owes something again: since now."""
    found = conn.execute(
        update(card_shortfalls)
        .where(card_shortfalls.c.payment_intent == payment_intent)
        .values(since_ms=at)
    )
    if not found.rowcount:
        conn.execute(insert(card_shortfalls).values(payment_intent=payment_intent, since_ms=at))


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


def office_names(conn: Connection) -> list[str]:
    """The exchange offices that have an operator, by name."""
    query = (
        select(members.c.office)
        .where(members.c.role == "office", members.c.office.is_not(None))
        .distinct()
        .order_by(members.c.office)
    )
    return [str(name) for name in conn.scalars(query)]


def transfer_of(conn: Connection, owner: str, client_id: str) -> StoredTransfer | None:
    """The transfer the node (or an operator's role key) posted with this client id."""
    found = ledger_repo.transfers_by_client_id(conn, [(owner, client_id)])
    return found.get((owner, client_id))


# -- disputes ------------------------------------------------------------------------------


def dispute(conn: Connection, dispute_id: str) -> RowMapping | None:
    query = select(card_disputes).where(card_disputes.c.dispute_id == dispute_id)
    return conn.execute(query).mappings().first()


def insert_dispute(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(card_disputes).values(**row))


def close_dispute(conn: Connection, row_id: str, dispute_id: str, **values: Any) -> None:
    """Close an open dispute, under Stripe's id for it (a legacy row takes its id now)."""
    conn.execute(
        update(card_disputes)
        .where(card_disputes.c.dispute_id == row_id)
        .values(dispute_id=dispute_id, **values)
    )


def lost_disputes(conn: Connection, payment_intent: str) -> int:
    """Cents of a card payment that Stripe took back through disputes lost."""
    d = card_disputes.c
    query = select(func.coalesce(func.sum(d.amount), 0)).where(
        d.payment_intent == payment_intent, d.status == "lost"
    )
    return int(conn.scalar(query) or 0)


def owed_in_open_disputes(conn: Connection, payment_intent: str) -> int:
    """The part of a card payment's shortfall that disputes still open may yet forgive."""
    d = card_disputes.c
    query = select(func.coalesce(func.sum(d.owed), 0)).where(
        d.payment_intent == payment_intent, d.status == "open"
    )
    return int(conn.scalar(query) or 0)


# -- shortfalls and what the treasurer did about them ------------------------------------


def shortfalls(conn: Connection) -> list[RowMapping]:
    """Every card payment that owes units, oldest shortfall first, with its member, since
    when, and how much of it disputes still open may yet forgive."""
    cp = card_payments.c
    query = (
        select(
            card_payments,
            members.c.display_name,
            members.c.frozen_reason,
            card_shortfalls.c.since_ms,
            _owed_open().label("owed_open"),
        )
        .join(members, members.c.id == cp.member_id)
        .outerjoin(card_shortfalls, card_shortfalls.c.payment_intent == cp.payment_intent)
        .where(cp.shortfall > 0)
        .order_by(card_shortfalls.c.since_ms, cp.payment_intent)
    )
    return list(conn.execute(query).mappings())


def _owed_open() -> Any:
    """`owed_in_open_disputes` of each card payment of a query."""
    d = card_disputes.c
    return (
        select(func.coalesce(func.sum(d.owed), 0))
        .where(d.payment_intent == card_payments.c.payment_intent, d.status == "open")
        .scalar_subquery()
    )


def frozen_members(conn: Connection) -> list[RowMapping]:
    """Members whose wallet is frozen, with what they owe for card payments."""
    owed = (
        select(func.coalesce(func.sum(card_payments.c.shortfall), 0))
        .where(card_payments.c.member_id == members.c.id)
        .scalar_subquery()
    )
    query = (
        select(members.c.id, members.c.display_name, members.c.frozen_reason, owed.label("owed"))
        .where(members.c.frozen_reason.is_not(None), members.c.role.in_(WALLET_ROLES))
        .order_by(members.c.display_name, members.c.id)
    )
    return list(conn.execute(query).mappings())


def insert_settlement(conn: Connection, row: dict[str, Any]) -> int | None:
    """Record a settlement; its id, or None if its request id is already taken."""
    try:
        with conn.begin_nested():
            found = conn.execute(insert(card_settlements).values(**row))
    except IntegrityError:
        return None
    assert found.inserted_primary_key is not None
    return int(found.inserted_primary_key[0])


def settlement_by_request(conn: Connection, request_id: str) -> RowMapping | None:
    query = _settlements().where(card_settlements.c.request_id == request_id)
    return conn.execute(query).mappings().first()


def settlement(conn: Connection, settlement_id: int) -> RowMapping | None:
    query = _settlements().where(card_settlements.c.id == settlement_id)
    return conn.execute(query).mappings().first()


def pending_settlements(conn: Connection) -> list[RowMapping]:
    query = _settlements().where(card_settlements.c.done_ms.is_(None))
    return list(conn.execute(query.order_by(card_settlements.c.id)).mappings())


def recent_settlements(conn: Connection, limit: int) -> list[RowMapping]:
    query = _settlements().where(card_settlements.c.done_ms.is_not(None))
    return list(conn.execute(query.order_by(card_settlements.c.id.desc()).limit(limit)).mappings())


def _settlements() -> Any:
    member, treasurer = members.alias("member"), members.alias("treasurer")
    s = card_settlements.c
    return (
        select(
            card_settlements,
            member.c.display_name.label("member_name"),
            treasurer.c.display_name.label("treasurer_name"),
        )
        .join(member, member.c.id == s.member_id)
        .join(treasurer, treasurer.c.id == s.treasurer_id)
    )


def finish_settlement(conn: Connection, settlement_id: int, **values: Any) -> None:
    conn.execute(
        update(card_settlements).where(card_settlements.c.id == settlement_id).values(**values)
    )


def drop_settlement(conn: Connection, settlement_id: int) -> None:
    """Forget a settlement that posted nothing (its request may be sent again)."""
    conn.execute(delete(card_settlements).where(card_settlements.c.id == settlement_id))
