"""Every query of the AMAP's tables; writes that hold the money's line (conditional
decrements) are here too, each in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from plugins.amap.models import (
    contract_lines,
    contracts,
    coordinators,
    distributions,
    holds,
    jokers,
    lines,
    moves,
    payments,
    places,
    producers,
    products,
    settlements,
    stock,
    subscriptions,
)

Row = dict[str, Any]


def one(conn: Connection, table: Any, key: Any) -> Row | None:
    row = conn.execute(select(table).where(table.c.id == key)).mappings().first()
    return None if row is None else dict(row)


def all_of(conn: Connection, query: Any) -> list[Row]:
    return [dict(r) for r in conn.execute(query).mappings()]


def is_producer(conn: Connection, member: str) -> bool:
    return conn.scalar(select(producers.c.member).where(producers.c.member == member)) is not None


def producer_ids(conn: Connection) -> list[str]:
    return list(conn.scalars(select(producers.c.member).order_by(producers.c.member)))


def products_of(conn: Connection, producer: str) -> list[Row]:
    return all_of(
        conn, select(products).where(products.c.producer == producer).order_by(products.c.id)
    )


def all_places(conn: Connection) -> list[Row]:
    return all_of(conn, select(places).order_by(places.c.id))


def all_contracts(conn: Connection) -> list[Row]:
    return all_of(conn, select(contracts).order_by(contracts.c.id))


def basket(conn: Connection, contract: int) -> list[Row]:
    """The fixed basket of a subscription contract, at today's prices."""
    query = (
        select(
            contract_lines.c.product,
            contract_lines.c.quantity,
            products.c.price,
            products.c.name,
            products.c.unit,
        )
        .join(products, products.c.id == contract_lines.c.product)
        .where(contract_lines.c.contract == contract)
        .order_by(contract_lines.c.product)
    )
    return all_of(conn, query)


def coordinator_ids(conn: Connection, contract: int) -> list[str]:
    query = select(coordinators.c.member).where(coordinators.c.contract == contract)
    return list(conn.scalars(query.order_by(coordinators.c.member)))


def coordinated_by(conn: Connection, member: str) -> list[int]:
    return list(
        conn.scalars(select(coordinators.c.contract).where(coordinators.c.member == member))
    )


def distributions_of(conn: Connection, contract: int) -> list[Row]:
    query = select(distributions).where(distributions.c.contract == contract)
    return all_of(conn, query.order_by(distributions.c.cutoff_ms, distributions.c.id))


def open_distributions(conn: Connection, contract: int, now: int) -> list[Row]:
    query = select(distributions).where(
        distributions.c.contract == contract,
        distributions.c.state == "planned",
        distributions.c.cutoff_ms > now,
    )
    return all_of(conn, query.order_by(distributions.c.cutoff_ms, distributions.c.id))


def stock_of(conn: Connection, distribution: int) -> dict[int, int]:
    query = select(stock.c.product, stock.c.remaining).where(stock.c.distribution == distribution)
    return {int(p): int(r) for p, r in conn.execute(query)}


def take_stock(conn: Connection, distribution: int, product: int, quantity: int) -> bool:
    """Take `quantity` units, only if that many are left: one conditional UPDATE, so that
    two orders racing for the last unit cannot both have it."""
    taken = conn.execute(
        update(stock)
        .where(
            stock.c.distribution == distribution,
            stock.c.product == product,
            stock.c.remaining >= quantity,
        )
        .values(remaining=stock.c.remaining - quantity)
    )
    return taken.rowcount == 1


def set_stock(conn: Connection, distribution: int, product: int, remaining: int) -> None:
    key = (stock.c.distribution == distribution, stock.c.product == product)
    changed = conn.execute(update(stock).where(*key).values(remaining=remaining))
    if changed.rowcount == 0:
        conn.execute(
            insert(stock).values(distribution=distribution, product=product, remaining=remaining)
        )


def put_back_stock(conn: Connection, distribution: int, product: int, quantity: int) -> None:
    conn.execute(
        update(stock)
        .where(stock.c.distribution == distribution, stock.c.product == product)
        .values(remaining=stock.c.remaining + quantity)
    )


def subscription_of(conn: Connection, contract: int, member: str) -> Row | None:
    query = select(subscriptions).where(
        subscriptions.c.contract == contract, subscriptions.c.member == member
    )
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def contract_titles(conn: Connection, subscriptions_: list[int]) -> dict[int, str]:
    """The title of each of these subscriptions' contract (unknown ones left out)."""
    if not subscriptions_:
        return {}
    query = (
        select(subscriptions.c.id, contracts.c.title)
        .join(contracts, contracts.c.id == subscriptions.c.contract)
        .where(subscriptions.c.id.in_(subscriptions_))
    )
    return {int(sub): str(title) for sub, title in conn.execute(query)}


def subscriptions_of_member(conn: Connection, member: str) -> list[Row]:
    query = select(subscriptions).where(subscriptions.c.member == member)
    return all_of(conn, query.order_by(subscriptions.c.id))


def active_subscriptions(conn: Connection, contract: int) -> list[Row]:
    """The subscriptions that take their basket: active, and started by a first payment."""
    query = select(subscriptions).where(
        subscriptions.c.contract == contract,
        subscriptions.c.state == "active",
        subscriptions.c.effective_ms.is_not(None),
    )
    return all_of(conn, query.order_by(subscriptions.c.id))


def lines_of(conn: Connection, subscription: int, distribution: int) -> dict[int, Row]:
    query = select(lines).where(
        lines.c.subscription == subscription, lines.c.distribution == distribution
    )
    return {int(r["product"]): r for r in all_of(conn, query)}


def value_of(conn: Connection, subscription: int, distribution: int) -> int:
    query = select(func.coalesce(func.sum(lines.c.quantity * lines.c.unit_price), 0)).where(
        lines.c.subscription == subscription, lines.c.distribution == distribution
    )
    return int(conn.scalar(query) or 0)


def undelivered_value(conn: Connection, subscription: int) -> int:
    """What the member's baskets still to come are worth: the escrow must hold it."""
    query = (
        select(func.coalesce(func.sum(lines.c.quantity * lines.c.unit_price), 0))
        .join(distributions, distributions.c.id == lines.c.distribution)
        .where(lines.c.subscription == subscription, distributions.c.state == "planned")
    )
    return int(conn.scalar(query) or 0)


def set_line(
    conn: Connection, subscription: int, distribution: int, product: int, quantity: int, price: int
) -> None:
    key = (
        lines.c.subscription == subscription,
        lines.c.distribution == distribution,
        lines.c.product == product,
    )
    conn.execute(delete(lines).where(*key))
    if quantity > 0:
        conn.execute(
            insert(lines).values(
                subscription=subscription,
                distribution=distribution,
                product=product,
                quantity=quantity,
                unit_price=price,
            )
        )


def drop_lines(conn: Connection, subscription: int, distribution: int) -> None:
    conn.execute(
        delete(lines).where(
            lines.c.subscription == subscription, lines.c.distribution == distribution
        )
    )


def subscribers_at(conn: Connection, distribution: int) -> list[int]:
    """The subscriptions with something to take at this distribution."""
    query = select(lines.c.subscription).where(lines.c.distribution == distribution).distinct()
    return sorted(int(s) for s in conn.scalars(query))


def jokers_used(conn: Connection, subscription: int) -> int:
    query = select(func.count()).select_from(jokers).where(jokers.c.subscription == subscription)
    return int(conn.scalar(query) or 0)


def payment_of_order(conn: Connection, subscription: int, order_id: str) -> int | None:
    """The transfer of a payment already recorded for this signed order, if any."""
    query = select(payments.c.transfer_id).where(
        payments.c.subscription == subscription, payments.c.order_id == order_id
    )
    found = conn.scalar(query)
    return None if found is None else int(found)


def record_payment(
    conn: Connection,
    subscription: int,
    transfer_id: int,
    amount: int,
    order_id: str | None,
    paid_ms: int,
) -> bool:
    """Record an escrow payment that reached the log, once: True if this call recorded it."""
    found = select(payments.c.transfer_id).where(payments.c.transfer_id == transfer_id)
    if conn.scalar(found) is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                insert(payments).values(
                    transfer_id=transfer_id,
                    subscription=subscription,
                    amount=amount,
                    unspent=amount,
                    order_id=order_id,
                    paid_ms=paid_ms,
                )
            )
    except IntegrityError:  # recorded meanwhile by the reaction, or the other way round
        return False
    return True


def unspent_payments(conn: Connection, subscription: int) -> list[Row]:
    query = select(payments).where(payments.c.subscription == subscription, payments.c.unspent > 0)
    return all_of(conn, query.order_by(payments.c.transfer_id))


def held(conn: Connection, subscription: int) -> int:
    query = select(func.coalesce(func.sum(payments.c.unspent), 0)).where(
        payments.c.subscription == subscription
    )
    return int(conn.scalar(query) or 0)


def paid(conn: Connection, subscription: int) -> int:
    query = select(func.coalesce(func.sum(payments.c.amount), 0)).where(
        payments.c.subscription == subscription
    )
    return int(conn.scalar(query) or 0)


def paid_by(conn: Connection, subscription: int, at_ms: int) -> int:
    """What the member had paid into the escrow by `at_ms` (recorded by then)."""
    query = select(func.coalesce(func.sum(payments.c.amount), 0)).where(
        payments.c.subscription == subscription,
        func.coalesce(payments.c.paid_ms, 0) <= at_ms,
    )
    return int(conn.scalar(query) or 0)


def season_of(conn: Connection, subscription: int) -> list[Row]:
    """The subscription's baskets, one row per distribution in cut-off order: its worth, the
    distribution's state and how it was settled (None while it is to come)."""
    worth = func.sum(lines.c.quantity * lines.c.unit_price)
    query = (
        select(
            distributions.c.id,
            distributions.c.day,
            distributions.c.cutoff_ms,
            distributions.c.state,
            worth.label("worth"),
            settlements.c.outcome,
        )
        .join(distributions, distributions.c.id == lines.c.distribution)
        .outerjoin(
            settlements,
            (settlements.c.distribution == lines.c.distribution)
            & (settlements.c.subscription == lines.c.subscription),
        )
        .where(lines.c.subscription == subscription)
        .group_by(
            distributions.c.id,
            distributions.c.day,
            distributions.c.cutoff_ms,
            distributions.c.state,
            settlements.c.outcome,
        )
        .order_by(distributions.c.cutoff_ms, distributions.c.id)
    )
    return [{**r, "worth": int(r["worth"])} for r in all_of(conn, query)]


def payments_of(conn: Connection, subscription: int) -> list[Row]:
    query = select(payments).where(payments.c.subscription == subscription)
    return all_of(conn, query.order_by(payments.c.transfer_id))


def spend(conn: Connection, transfer_id: int, amount: int) -> bool:
    """Take `amount` of what a payment has left, only if it has that much."""
    taken = conn.execute(
        update(payments)
        .where(payments.c.transfer_id == transfer_id, payments.c.unspent >= amount)
        .values(unspent=payments.c.unspent - amount)
    )
    return taken.rowcount == 1


def moved(conn: Connection, subscription: int, kind: str) -> int:
    query = select(func.coalesce(func.sum(moves.c.amount), 0)).where(
        moves.c.subscription == subscription, moves.c.kind == kind
    )
    return int(conn.scalar(query) or 0)


def moves_count(conn: Connection, subscription: int) -> int:
    query = select(func.count()).select_from(moves).where(moves.c.subscription == subscription)
    return int(conn.scalar(query) or 0)


def pending_moves(conn: Connection, subscriptions_: list[int] | None = None) -> list[Row]:
    query = select(moves).where(moves.c.transfer_id.is_(None))
    if subscriptions_ is not None:
        query = query.where(moves.c.subscription.in_(subscriptions_))
    return all_of(conn, query.order_by(moves.c.client_id))


def settle(
    conn: Connection, distribution: int, subscription: int, outcome: str, amount: int
) -> bool:
    """One settlement per distribution and subscription: False if it was settled already
    (by this call made twice, or by another process at the same time)."""
    key = (settlements.c.distribution == distribution, settlements.c.subscription == subscription)
    if conn.scalar(select(settlements.c.outcome).where(*key)) is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                insert(settlements).values(
                    distribution=distribution,
                    subscription=subscription,
                    outcome=outcome,
                    amount=amount,
                )
            )
    except IntegrityError:
        return False
    return True


def settled(conn: Connection, distribution: int, subscription: int) -> str | None:
    key = (settlements.c.distribution == distribution, settlements.c.subscription == subscription)
    found = conn.scalar(select(settlements.c.outcome).where(*key))
    return None if found is None else str(found)


def owed_to_producer(conn: Connection, subscription: int) -> int:
    """What the baskets delivered were worth beyond what was released for them."""
    query = select(func.coalesce(func.sum(settlements.c.amount), 0)).where(
        settlements.c.subscription == subscription, settlements.c.outcome == "delivered"
    )
    delivered = int(conn.scalar(query) or 0)
    return max(0, delivered - moved(conn, subscription, "escrow_release"))


def delivered_to_producer(conn: Connection, producer: str) -> tuple[int, int]:
    """(worth of baskets delivered, units released to the producer) over all contracts."""
    subs = (
        select(subscriptions.c.id)
        .join(contracts, contracts.c.id == subscriptions.c.contract)
        .where(contracts.c.producer == producer)
    )
    delivered = select(func.coalesce(func.sum(settlements.c.amount), 0)).where(
        settlements.c.subscription.in_(subs), settlements.c.outcome == "delivered"
    )
    released = select(func.coalesce(func.sum(moves.c.amount), 0)).where(
        moves.c.subscription.in_(subs), moves.c.kind == "escrow_release"
    )
    return int(conn.scalar(delivered) or 0), int(conn.scalar(released) or 0)


def ordered_from_producer(conn: Connection, producer: str) -> int:
    query = (
        select(func.coalesce(func.sum(lines.c.quantity * lines.c.unit_price), 0))
        .join(distributions, distributions.c.id == lines.c.distribution)
        .join(contracts, contracts.c.id == distributions.c.contract)
        .where(contracts.c.producer == producer, distributions.c.state == "planned")
    )
    return int(conn.scalar(query) or 0)


def sheet_rows(conn: Connection, distribution: int) -> list[Row]:
    """Who takes what at a distribution: one row per member and product."""
    query = (
        select(
            subscriptions.c.id.label("subscription"),
            subscriptions.c.member,
            products.c.name.label("product_name"),
            products.c.unit,
            lines.c.quantity,
            lines.c.unit_price,
        )
        .join(subscriptions, subscriptions.c.id == lines.c.subscription)
        .join(products, products.c.id == lines.c.product)
        .where(lines.c.distribution == distribution)
        .order_by(subscriptions.c.member, products.c.name)
    )
    return all_of(conn, query)


def baskets_of(conn: Connection, subscription: int) -> list[Row]:
    query = (
        select(
            distributions.c.id.label("distribution"),
            distributions.c.day,
            distributions.c.state,
            distributions.c.cutoff_ms,
            products.c.name,
            products.c.unit,
            lines.c.product,
            lines.c.quantity,
            lines.c.unit_price,
        )
        .join(distributions, distributions.c.id == lines.c.distribution)
        .join(products, products.c.id == lines.c.product)
        .where(lines.c.subscription == subscription)
        .order_by(distributions.c.cutoff_ms, products.c.name)
    )
    return all_of(conn, query)


def hold(
    conn: Connection, order_id: str, subscription: int, distribution: int, **values: Any
) -> None:
    conn.execute(
        insert(holds).values(
            order_id=order_id, subscription=subscription, distribution=distribution, **values
        )
    )


def holding(conn: Connection, subscription: int, distribution: int) -> str | None:
    """The signed payment an order of this basket waits for, if any."""
    query = select(holds.c.order_id).where(
        holds.c.subscription == subscription, holds.c.distribution == distribution
    )
    found = conn.scalar(query)
    return None if found is None else str(found)


def expired_holds(conn: Connection, before_ms: int) -> list[Row]:
    return all_of(conn, select(holds).where(holds.c.expires_ms < before_ms))


def drop_hold(conn: Connection, order_id: str) -> None:
    conn.execute(delete(holds).where(holds.c.order_id == order_id))


def escrow_holdings(conn: Connection) -> dict[int, int]:
    """What each subscription's escrow holds by these records: its payments, less the
    releases and refunds posted."""
    held: dict[int, int] = {}
    for subscription, amount in conn.execute(
        select(payments.c.subscription, func.sum(payments.c.amount)).group_by(
            payments.c.subscription
        )
    ):
        held[subscription] = held.get(subscription, 0) + int(amount)
    posted = (
        select(moves.c.subscription, func.sum(moves.c.amount))
        .where(moves.c.transfer_id.is_not(None))
        .group_by(moves.c.subscription)
    )
    for subscription, amount in conn.execute(posted):
        held[subscription] = held.get(subscription, 0) - int(amount)
    return held
