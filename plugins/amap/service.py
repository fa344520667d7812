"""The AMAP's rules. Money moves only through the ledger's escrow operations: each member's
subscription has its own escrow, `escrow:amap:sub-<id>`, which the member pays into (a signed
`escrow_payment`) and which the plugin's key releases to the producer at each delivered
distribution, or refunds to the member (a cancelled distribution, an absence, leaving early).

Every release or refund is first decided in the database, in the same transaction as what
caused it (a `moves` row with its client id, drawn from one payment's unspent units), then
posted; posting again (a retry, a second process) moves nothing more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, delete, insert, update
from sqlalchemy.exc import IntegrityError

from ledger.errors import LedgerError
from ledger.operations import plugin_escrow
from ledger.posting import Posted
from ledger.signing import SignedOrder
from members import service as members_service
from members.access import Member
from plugins.amap import errors
from plugins.amap import repository as repo
from plugins.amap.models import (
    contract_lines,
    contracts,
    coordinators,
    distributions,
    jokers,
    moves,
    places,
    producers,
    products,
    stock,
    subscriptions,
)
from runtime.node import Node
from runtime.reactions import LedgerEvent, TransferPosted
from runtime.signing import post, posted_or_existing, sign_as
from web.i18n import translations
from web.refusals import Money

NAME = "amap"
KEY = f"plugin:{NAME}"
ESCROW_PREFIX = f"escrow:{NAME}:sub-"
SUBSCRIPTION_ESCROW = re.compile(rf"escrow:{NAME}:sub-([0-9]{{1,18}})")
# How a member's wallet names a subscription's escrow (a msgid: French in amap.po).
ESCROW_NAME = "AMAP · {contract}"
STATES = {"planned": "planned", "delivered": "delivered", "cancelled": "cancelled"}
NATURES = {
    "subscription": "subscription",
    "free_choice": "free choice",
    "prepaid": "prepaid card",
}

Row = dict[str, Any]


def escrow(subscription: int) -> str:
    return plugin_escrow(NAME, f"sub-{subscription}")


def escrow_names(conn: Connection, codes: Sequence[str], lang: str) -> dict[str, str]:
    """The subscriptions' escrows among `codes`, each named by its contract's title, as the
    member who pays into it reads it (and the producer paid from it)."""
    wanted = {
        int(found[1]): code for code in codes if (found := SUBSCRIPTION_ESCROW.fullmatch(code))
    }
    said = translations(lang).gettext(ESCROW_NAME)
    titles = repo.contract_titles(conn, sorted(wanted))
    return {wanted[sub]: said.format(contract=title) for sub, title in titles.items()}


def account(member: str) -> str:
    return f"member:{member}"


def now_ms() -> int:
    # The members' clock (members.service reads it by this name), which tests move.
    clock: Callable[[], int] = members_service.now_ms  # type: ignore[attr-defined]
    return clock()


def _money(node: Node, cents: int) -> Money:
    return Money(cents, node.ledger.chart.local)


# -- admin: producers, places, contracts ---------------------------------------------------


def name_producer(node: Node, member_id: str) -> Row:
    """Name a merchant member a producer (once; naming again changes nothing)."""
    found = members_service.find_member(node, member_id)
    if found is None or found.role != "merchant":
        raise errors.NOT_A_MERCHANT()
    with node.engine.begin() as conn:
        if not repo.is_producer(conn, member_id):
            conn.execute(insert(producers).values(member=member_id, named_ms=now_ms()))
    return {"member": member_id, "name": found.display_name}


def add_place(node: Node, name: str, address: str) -> Row:
    with node.engine.begin() as conn:
        place_id = conn.execute(
            insert(places).values(name=name, address=address).returning(places.c.id)
        ).scalar_one()
    return {"id": place_id, "name": name, "address": address}


def _members_only(node: Node, member_ids: list[str]) -> None:
    for member_id in member_ids:
        found = members_service.find_member(node, member_id)
        if found is None or not found.has_wallet:
            raise errors.NOT_A_MEMBER(member=member_id)


def create_contract(
    node: Node, fields: Row, basket: dict[int, int], coordinator_ids: list[str]
) -> Row:
    """A contract of a producer, its coordinators and (for a subscription) its basket."""
    _members_only(node, coordinator_ids)
    with node.engine.begin() as conn:
        if not repo.is_producer(conn, fields["producer"]):
            raise errors.NOT_A_PRODUCER()
        own = {p["id"] for p in repo.products_of(conn, fields["producer"])}
        if fields["nature"] == "subscription" and (not basket or not set(basket) <= own):
            raise errors.BAD_BASKET()
        contract_id = conn.execute(
            insert(contracts).values(**fields).returning(contracts.c.id)
        ).scalar_one()
        for product, quantity in sorted(basket.items()):
            conn.execute(
                insert(contract_lines).values(
                    contract=contract_id, product=product, quantity=quantity
                )
            )
        for member_id in sorted(set(coordinator_ids)):
            conn.execute(insert(coordinators).values(contract=contract_id, member=member_id))
    return contract(node, contract_id)


def set_coordinators(node: Node, contract_id: int, coordinator_ids: list[str]) -> Row:
    """The contract's coordinators from now on: the list replaces the one before."""
    _members_only(node, coordinator_ids)
    with node.engine.begin() as conn:
        if repo.one(conn, contracts, contract_id) is None:
            raise errors.UNKNOWN_CONTRACT()
        conn.execute(delete(coordinators).where(coordinators.c.contract == contract_id))
        for member_id in sorted(set(coordinator_ids)):
            conn.execute(insert(coordinators).values(contract=contract_id, member=member_id))
    return contract(node, contract_id)


def contract(node: Node, contract_id: int) -> Row:
    with node.ledger.reading() as conn:
        found = repo.one(conn, contracts, contract_id)
        if found is None:
            raise errors.UNKNOWN_CONTRACT()
        found["basket"] = repo.basket(conn, contract_id)
        found["coordinators"] = repo.coordinator_ids(conn, contract_id)
        found["distributions"] = repo.distributions_of(conn, contract_id)
        found["basket_price"] = sum(b["price"] * b["quantity"] for b in found["basket"])
        found["products"] = repo.products_of(conn, found["producer"])
    return found


def producers_list(node: Node) -> list[Row]:
    """The producers, their names and products (for the admin's forms)."""
    with node.ledger.reading() as conn:
        ids = repo.producer_ids(conn)
        products = {m: repo.products_of(conn, m) for m in ids}
    names = members_service.names(node, set(ids))
    return [{"member": m, "name": names.get(m, m), "products": products[m]} for m in ids]


def all_contracts(node: Node) -> list[Row]:
    with node.ledger.reading() as conn:
        found = repo.all_contracts(conn)
        for deal in found:
            deal["coordinators"] = repo.coordinator_ids(conn, deal["id"])
    return found


def places_list(node: Node) -> list[Row]:
    with node.ledger.reading() as conn:
        return repo.all_places(conn)


# -- producers: their products -------------------------------------------------------------


def add_product(node: Node, producer: Member, name: str, unit: str, price: int) -> Row:
    with node.engine.begin() as conn:
        if not repo.is_producer(conn, producer.id):
            raise errors.NOT_A_PRODUCER()
        row = {"producer": producer.id, "name": name, "unit": unit, "price": price}
        product_id = conn.execute(
            insert(products).values(**row).returning(products.c.id)
        ).scalar_one()
    return {**row, "id": product_id}


def change_product(node: Node, producer: Member, product_id: int, changes: Row) -> Row:
    """A new name, unit or price: lines already ordered keep the price they were ordered at."""
    with node.engine.begin() as conn:
        found = repo.one(conn, products, product_id)
        if found is None:
            raise errors.UNKNOWN_PRODUCT()
        if found["producer"] != producer.id:
            raise errors.NOT_YOUR_PRODUCT()
        if changes:
            conn.execute(update(products).where(products.c.id == product_id).values(**changes))
    return {**found, **changes}


def products_of(node: Node, producer: str) -> list[Row]:
    with node.ledger.reading() as conn:
        return repo.products_of(conn, producer)


def is_producer(node: Node, member_id: str) -> bool:
    with node.ledger.reading() as conn:
        return repo.is_producer(conn, member_id)


def statement(node: Node, producer: str) -> Row:
    """What the producer's baskets are worth: still to deliver, delivered, and paid."""
    with node.ledger.reading() as conn:
        delivered, released = repo.delivered_to_producer(conn, producer)
        ordered = repo.ordered_from_producer(conn, producer)
    return {
        "to_deliver": ordered,
        "delivered": delivered,
        "paid": released,
        "owed": delivered - released,
    }


# -- coordinators: distributions -----------------------------------------------------------


def _coordinate(conn: Connection, who: Member, contract_id: int) -> Row:
    found = repo.one(conn, contracts, contract_id)
    if found is None:
        raise errors.UNKNOWN_CONTRACT()
    if who.role != "admin" and who.id not in repo.coordinator_ids(conn, contract_id):
        raise errors.NOT_COORDINATOR()
    return found


def may_coordinate(node: Node, who: Member) -> list[int]:
    with node.ledger.reading() as conn:
        if who.role == "admin":
            return [c["id"] for c in repo.all_contracts(conn)]
        return repo.coordinated_by(conn, who.id)


def plan_distribution(
    node: Node,
    who: Member,
    contract_id: int,
    day: date,
    place: int,
    cutoff_ms: int,
    stock_limits: dict[int, int],
) -> Row:
    """A distribution of a contract. Subscribers of a subscription contract get their basket
    in it at today's prices; the others order from its stock."""
    with node.engine.begin() as conn:
        found = _coordinate(conn, who, contract_id)
        if repo.one(conn, places, place) is None:
            raise errors.UNKNOWN_PLACE()
        own = {p["id"]: p for p in repo.products_of(conn, found["producer"])}
        if not set(stock_limits) <= set(own):
            raise errors.NOT_IN_CONTRACT()
        dist_id = conn.execute(
            insert(distributions)
            .values(
                contract=contract_id,
                place=place,
                day=day.isoformat(),
                cutoff_ms=cutoff_ms,
                state="planned",
            )
            .returning(distributions.c.id)
        ).scalar_one()
        for product, remaining in sorted(stock_limits.items()):
            conn.execute(
                insert(stock).values(distribution=dist_id, product=product, remaining=remaining)
            )
        if found["nature"] == "subscription":
            items = repo.basket(conn, contract_id)
            worth = sum(b["price"] * b["quantity"] for b in items)
            for sub in repo.active_subscriptions(conn, contract_id):
                for b in items:
                    repo.set_line(conn, sub["id"], dist_id, b["product"], b["quantity"], b["price"])
                conn.execute(
                    update(subscriptions)
                    .where(subscriptions.c.id == sub["id"])
                    .values(total=subscriptions.c.total + worth)
                )
    return distribution(node, dist_id)


def set_stock(node: Node, who: Member, distribution_id: int, limits: dict[int, int]) -> Row:
    """Set the units left to order of some products at a distribution (a coordinator)."""
    with node.engine.begin() as conn:
        found, deal = _closing(conn, who, distribution_id)
        if found["state"] != "planned":
            raise errors.DISTRIBUTION_CLOSED(state=STATES[found["state"]])
        own = {p["id"] for p in repo.products_of(conn, deal["producer"])}
        if not set(limits) <= own:
            raise errors.NOT_IN_CONTRACT()
        for product, remaining in sorted(limits.items()):
            repo.set_stock(conn, distribution_id, product, remaining)
    return distribution(node, distribution_id)


def distribution(node: Node, distribution_id: int) -> Row:
    with node.ledger.reading() as conn:
        found = repo.one(conn, distributions, distribution_id)
        if found is None:
            raise errors.UNKNOWN_DISTRIBUTION()
        found["stock"] = repo.stock_of(conn, distribution_id)
        place = repo.one(conn, places, found["place"])
        found["place_name"] = place["name"] if place else ""
    return found


def _closing(conn: Connection, who: Member, distribution_id: int) -> tuple[Row, Row]:
    found = repo.one(conn, distributions, distribution_id)
    if found is None:
        raise errors.UNKNOWN_DISTRIBUTION()
    return found, _coordinate(conn, who, found["contract"])


def _close(
    conn: Connection, who: Member, distribution_id: int, state: str, other: str
) -> tuple[Row, list[int]]:
    """Mark the distribution `state` (refused once it is `other`): its contract, and the
    subscriptions that have a basket in it."""
    found, deal = _closing(conn, who, distribution_id)
    if found["state"] == other:
        raise errors.DISTRIBUTION_CLOSED(state=STATES[other])
    conn.execute(
        update(distributions).where(distributions.c.id == distribution_id).values(state=state)
    )
    return deal, repo.subscribers_at(conn, distribution_id)


def deliver(node: Node, who: Member, distribution_id: int) -> Row:
    """The distribution took place: each basket's worth goes from its escrow to the producer.
    A subscription's basket whose instalment was not paid by the cut-off was not handed
    over: nothing is released for it, and it leaves the season. Marked twice, at once or
    later, the producer is paid once."""
    with node.engine.begin() as conn:
        deal, subs = _close(conn, who, distribution_id, "delivered", "cancelled")
        dist = repo.one(conn, distributions, distribution_id)
        assert dist is not None
        for sub in subs:
            worth = repo.value_of(conn, sub, distribution_id)
            paid = _covered(conn, sub, distribution_id, int(dist["cutoff_ms"]))
            if deal["nature"] == "subscription" and not paid:
                _unpaid(conn, sub, distribution_id, worth)
            elif repo.settle(conn, distribution_id, sub, "delivered", worth):
                _draw(
                    conn,
                    sub,
                    worth,
                    "escrow_release",
                    account(deal["producer"]),
                    "amap.delivered",
                    f"d{distribution_id}-s{sub}",
                )
    _post_moves(node, subs)
    return distribution(node, distribution_id)


def _unpaid(conn: Connection, sub_id: int, distribution_id: int, worth: int) -> None:
    """Not paid by the cut-off, not delivered: the member owes nothing for it, and what they
    paid stays in the escrow for the next baskets."""
    if repo.settle(conn, distribution_id, sub_id, "unpaid", 0):
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == sub_id)
            .values(total=subscriptions.c.total - worth)
        )
        # Paid after the cut-off for this basket: that payment comes back.
        _refund_excess(conn, _sub(conn, sub_id), f"u{distribution_id}-s{sub_id}", "amap.unpaid")


def cancel(node: Node, who: Member, distribution_id: int) -> Row:
    """The distribution will not take place: each member's share comes back (or stays on
    the prepaid card)."""
    with node.engine.begin() as conn:
        deal, subs = _close(conn, who, distribution_id, "cancelled", "delivered")
        for sub in subs:
            worth = repo.value_of(conn, sub, distribution_id)
            if repo.settle(conn, distribution_id, sub, "cancelled", worth):
                _give_back(
                    conn,
                    deal,
                    _sub(conn, sub),
                    worth,
                    f"c{distribution_id}-s{sub}",
                    "amap.cancelled",
                )
    _post_moves(node, subs)
    return distribution(node, distribution_id)


# -- members: subscribing, paying, ordering --------------------------------------------------


def _sub(conn: Connection, sub_id: int) -> Row:
    found = repo.one(conn, subscriptions, sub_id)
    assert found is not None
    return found


def _mine(conn: Connection, member: Member, sub_id: int) -> tuple[Row, Row]:
    """The member's own subscription and its contract; another's is not found (404)."""
    found = repo.one(conn, subscriptions, sub_id)
    if found is None or found["member"] != member.id:
        raise errors.UNKNOWN_SUBSCRIPTION()
    deal = repo.one(conn, contracts, found["contract"])
    assert deal is not None
    return found, deal


# A subscription waiting for its first payment lapses after this long: it holds no basket,
# and subscribing again starts it afresh. (A payment landing later still starts it.)
PENDING_MS = 3_600_000


def subscribe(
    node: Node, member: Member, contract_id: int, envelope: SignedOrder | None = None
) -> tuple[Row, bool]:
    """Join a contract: its escrow is opened with it. A subscription contract's membership
    starts with its first payment (the whole season, or the first instalment), signed on the
    member's device: without it the subscription waits, on no sheet, and lapses. Returns the
    subscription and whether this call changed anything (False: the same payment again)."""
    try:
        sub_id = _subscribe(node, member, contract_id, envelope)
    except IntegrityError:  # the same member subscribing twice at once: the second loses
        raise errors.ALREADY_SUBSCRIBED() from None
    if envelope is None:
        return subscription(node, member, sub_id), True
    posted = pay(node, member, sub_id, envelope)
    return subscription(node, member, sub_id), not posted.replayed


def _subscribe(node: Node, member: Member, contract_id: int, envelope: SignedOrder | None) -> int:
    now = now_ms()
    with node.engine.begin() as conn:
        deal = repo.one(conn, contracts, contract_id)
        if deal is None:
            raise errors.UNKNOWN_CONTRACT()
        found = repo.subscription_of(conn, contract_id, member.id)
        if found is not None:
            order_id = str(envelope.order.get("id", "")) if envelope is not None else ""
            if order_id and repo.payment_of_order(conn, found["id"], order_id) is not None:
                return int(found["id"])  # the first payment sent again: answered again
            if found["effective_ms"] is not None or found["state"] != "active":
                raise errors.ALREADY_SUBSCRIBED()
            if found["created_ms"] + PENDING_MS <= now:  # lapsed: waiting afresh
                conn.execute(
                    update(subscriptions)
                    .where(subscriptions.c.id == found["id"])
                    .values(created_ms=now)
                )
            return int(found["id"])
        waits = deal["nature"] == "subscription"
        if waits and not repo.open_distributions(conn, contract_id, now):
            raise errors.NOTHING_TO_SUBSCRIBE()
        sub_id = conn.execute(
            insert(subscriptions)
            .values(
                contract=contract_id,
                member=member.id,
                state="active",
                total=0,
                credit=0,
                created_ms=now,
                effective_ms=None if waits else now,
            )
            .returning(subscriptions.c.id)
        ).scalar_one()
        node.ledger.open_account(escrow(sub_id), conn)  # with the subscription, or not at all
    return int(sub_id)


def _activate(conn: Connection, sub: Row, deal: Row) -> None:
    """The first payment is recorded: the basket is put in every distribution still open, at
    today's prices, and the instalments are cut (each covers the same number of them)."""
    now = now_ms()
    started = conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == sub["id"], subscriptions.c.effective_ms.is_(None))
        .values(effective_ms=now)
    )
    if started.rowcount != 1:
        return
    coming = repo.open_distributions(conn, deal["id"], now)
    items = repo.basket(conn, deal["id"])
    worth = sum(b["price"] * b["quantity"] for b in items)
    for dist in coming:
        for b in items:
            repo.set_line(conn, sub["id"], dist["id"], b["product"], b["quantity"], b["price"])
    conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == sub["id"])
        .values(
            total=worth * len(coming),
            state="active",
            instalment_size=_size(len(coming), int(deal["instalments"])),
        )
    )
    _refund_excess(conn, sub, f"start-s{sub['id']}", "amap.overpaid")


def _size(count: int, instalments: int) -> int:
    """Distributions each instalment covers: the season cut in `instalments` parts."""
    return max(1, -(-count // max(1, instalments)))


def subscription(node: Node, member: Member, sub_id: int) -> Row:
    with node.ledger.reading() as conn:
        found, deal = _mine(conn, member, sub_id)
        return _described(conn, found, deal)


def _walk(conn: Connection, sub_id: int) -> list[Row]:
    """The baskets the member pays for, in cut-off order: not cancelled, not left unpaid."""
    return [
        b
        for b in repo.season_of(conn, sub_id)
        if b["state"] != "cancelled" and b["outcome"] not in ("unpaid", "absent", "cancelled")
    ]


def _net(conn: Connection, sub_id: int, at_ms: int) -> int:
    """What the member's payments recorded by `at_ms` bring to the baskets: less the refunds
    (each refund gives back a basket that is no longer in the season, or an excess)."""
    return repo.paid_by(conn, sub_id, at_ms) - repo.moved(conn, sub_id, "escrow_refund")


def _covered(conn: Connection, sub_id: int, distribution_id: int, at_ms: int) -> bool:
    """Paid for by `at_ms`: the payments cover this basket and every one before it."""
    net, running = _net(conn, sub_id, at_ms), 0
    for b in _walk(conn, sub_id):
        running += b["worth"]
        if b["id"] == distribution_id:
            return bool(running <= net)
    return True


def _instalments(baskets: list[Row], size: int, net: int) -> list[Row]:
    """The schedule: each instalment covers the next `size` baskets and is due before the
    cut-off of the first one it covers (of the first one not yet paid, once partly paid)."""
    out, running = [], 0
    for start in range(0, len(baskets), size):
        part = baskets[start : start + size]
        before, first_unpaid = running, None
        for b in part:
            running += b["worth"]
            if running > net and first_unpaid is None:
                first_unpaid = b
        due = first_unpaid or part[0]
        out.append(
            {
                "amount": running - before,
                "left": max(0, min(running - before, running - net)),
                "due_ms": due["cutoff_ms"],
                "day": due["day"],
                "distributions": len(part),
                "paid": running <= net,
            }
        )
    return out


def _coming(conn: Connection, deal: Row, now: int) -> tuple[list[Row], int]:
    """The baskets a subscription made now would take, and each instalment's size."""
    worth = sum(b["price"] * b["quantity"] for b in repo.basket(conn, deal["id"]))
    baskets = [{**d, "worth": worth} for d in repo.open_distributions(conn, deal["id"], now)]
    return baskets, _size(len(baskets), int(deal["instalments"]))


def quote(node: Node, contract_id: int) -> Row:
    """What subscribing costs now: the whole season, or the first of the instalments."""
    with node.ledger.reading() as conn:
        deal = repo.one(conn, contracts, contract_id)
        if deal is None:
            raise errors.UNKNOWN_CONTRACT()
        baskets, size = _coming(conn, deal, now_ms())
    schedule = _instalments(baskets, size, 0)
    season = sum(b["worth"] for b in baskets)
    first = schedule[0]["amount"] if schedule else 0
    return {"season": season, "first": first, "schedule": schedule}


def _described(conn: Connection, found: Row, deal: Row) -> Row:
    sub_id = found["id"]
    held = repo.held(conn, sub_id)
    needed = repo.undelivered_value(conn, sub_id)
    paid = repo.paid(conn, sub_id)
    owed = repo.owed_to_producer(conn, sub_id)  # delivered, not yet paid
    due = max(0, needed + owed - held) if deal["nature"] != "prepaid" else 0
    state, schedule, unpaid = found["state"], [], []
    if deal["nature"] == "subscription":
        now = now_ms()
        if found["effective_ms"] is None:
            state = "pending" if found["created_ms"] + PENDING_MS > now else "expired"
            baskets, size, net = *_coming(conn, deal, now), 0
        else:
            baskets = _walk(conn, sub_id)
            size = found["instalment_size"] or _size(len(baskets), int(deal["instalments"]))
            net = _net(conn, sub_id, now)
            unpaid = [b["day"] for b in repo.season_of(conn, sub_id) if b["outcome"] == "unpaid"]
        schedule = _instalments(baskets, size, net)
        due = max(0, sum(b["worth"] for b in baskets) - net)
    upcoming = next((i for i in schedule if not i["paid"]), None)
    return {
        **found,
        "state": state,
        "escrow": escrow(sub_id),
        "nature": deal["nature"],
        "title": deal["title"],
        "paid": paid,
        "held": held,
        "released": repo.moved(conn, sub_id, "escrow_release"),
        "refunded": repo.moved(conn, sub_id, "escrow_refund"),
        "due": due,
        "next_instalment": upcoming["left"] if upcoming else due,
        "next_due_ms": upcoming["due_ms"] if upcoming else None,
        "schedule": schedule,
        "unpaid": unpaid,
        "jokers_used": repo.jokers_used(conn, sub_id),
        "baskets": repo.baskets_of(conn, sub_id),
        "payments": repo.payments_of(conn, sub_id),
    }


def subscriptions_of(node: Node, member: Member) -> list[Row]:
    with node.ledger.reading() as conn:
        found = repo.subscriptions_of_member(conn, member.id)
        out = []
        for sub in found:
            deal = repo.one(conn, contracts, sub["contract"])
            assert deal is not None
            out.append(_described(conn, sub, deal))
        return out


def _check_payment(
    node: Node, member: Member, sub_id: int, envelope: SignedOrder, amounts: set[int]
) -> int:
    order = envelope.order
    amount = order.get("amount")
    wanted = {"kind": "escrow_payment", "from": member.account, "to": escrow(sub_id)}
    right = all(order.get(k) == v for k, v in wanted.items())
    if not right or not isinstance(amount, int) or amount not in amounts:
        shown = min(amounts) if amounts else 0
        raise errors.WRONG_PAYMENT(amount=_money(node, shown), escrow=escrow(sub_id))
    return amount


def pay(node: Node, member: Member, sub_id: int, envelope: SignedOrder) -> Posted:
    """Pay into the subscription's escrow: the whole season or the next instalment (a
    subscription; its first payment starts it), or any amount loaded on a prepaid card."""
    with node.ledger.reading() as conn:
        found, deal = _mine(conn, member, sub_id)
        if found["state"] != "active":
            raise errors.SUBSCRIPTION_LEFT()
        shown = _described(conn, found, deal)
        again = repo.payment_of_order(conn, sub_id, str(envelope.order.get("id", "")))
    if again is not None:  # the same order sent again: the ledger answers it again, once
        return post(node, envelope)
    if deal["nature"] == "prepaid":
        amount = envelope.order.get("amount")
        if not isinstance(amount, int) or amount <= 0:
            raise errors.WRONG_PAYMENT(amount=_money(node, 1), escrow=escrow(sub_id))
        _check_payment(node, member, sub_id, envelope, {amount})
    else:
        if shown["due"] == 0:
            raise errors.NOTHING_DUE()
        # The whole of what is due, or the next instalment (the first, to start with).
        _check_payment(node, member, sub_id, envelope, {shown["due"], shown["next_instalment"]})
    posted = post(node, envelope)
    order_id = str(envelope.order.get("id", "")) or None
    amount = int(envelope.order["amount"])
    _record(node, sub_id, posted.transfer_id, amount, deal["nature"], order_id)
    return posted


def record_payment(
    node: Node, sub_id: int, transfer_id: int, amount: int, order_id: str | None = None
) -> None:
    """Record an escrow payment posted by other means (the demo's): as the reaction would."""
    with node.ledger.reading() as conn:
        found = repo.one(conn, subscriptions, sub_id)
        deal = None if found is None else repo.one(conn, contracts, found["contract"])
    if deal is None:
        raise errors.UNKNOWN_SUBSCRIPTION()
    _record(node, sub_id, transfer_id, amount, deal["nature"], order_id)


def _record(
    node: Node, sub_id: int, transfer_id: int, amount: int, nature: str, order_id: str | None
) -> None:
    with node.engine.begin() as conn:
        recorded = repo.record_payment(conn, sub_id, transfer_id, amount, order_id, now_ms())
        sub = _sub(conn, sub_id)
        if recorded and sub["effective_ms"] is None:  # its first payment: it starts now
            deal = repo.one(conn, contracts, sub["contract"])
            assert deal is not None
            _activate(conn, sub, deal)
        if recorded and nature == "prepaid":
            conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id == sub_id)
                .values(credit=subscriptions.c.credit + amount)
            )
        owed = repo.owed_to_producer(conn, sub_id)
        if recorded and owed > 0:  # baskets delivered before they were paid: paid now
            sub = _sub(conn, sub_id)
            deal = repo.one(conn, contracts, sub["contract"])
            assert deal is not None
            _draw(
                conn,
                sub_id,
                owed,
                "escrow_release",
                account(deal["producer"]),
                "amap.delivered",
                f"late{transfer_id}-s{sub_id}",
            )
    _post_moves(node, [sub_id])


def on_ledger_event(node: Node, event: LedgerEvent) -> None:
    """An escrow payment into a subscription reached the log: record it, once, whoever
    posted it (a crash between posting and recording loses nothing)."""
    if not isinstance(event, TransferPosted) or event.kind != "escrow_payment":
        return
    target = str(event.order.get("to", ""))
    if not target.startswith(ESCROW_PREFIX):
        return
    sub_id = int(target.removeprefix(ESCROW_PREFIX))
    with node.ledger.reading() as conn:
        found = repo.one(conn, subscriptions, sub_id)
        deal = None if found is None else repo.one(conn, contracts, found["contract"])
    if deal is not None:
        amount, order_id = int(event.order["amount"]), str(event.order.get("id", ""))
        _record(node, sub_id, event.transfer_id, amount, deal["nature"], order_id or None)


@dataclass(frozen=True)
class Ordered:
    subscription: Row
    change: int  # what the order cost more (+) or less (-) than before
    transfer_id: int | None  # the payment it took, if any


def order(
    node: Node,
    member: Member,
    sub_id: int,
    distribution_id: int,
    quantities: dict[int, int],
    envelope: SignedOrder | None,
    payer: Callable[[int], Posted] | None = None,
) -> Ordered:
    """Order (or change an order) for a distribution before its cut-off, within its stock.
    A higher free-choice order takes a payment of the difference; a lower one gets it back.
    A prepaid card pays from what is loaded on it."""
    with node.ledger.reading() as conn:
        found, deal = _mine(conn, member, sub_id)
        before = repo.lines_of(conn, sub_id, distribution_id)
        prices = {p["id"]: p["price"] for p in repo.products_of(conn, deal["producer"])}
    if deal["nature"] == "subscription":
        raise errors.NOT_ORDERABLE()
    if found["state"] != "active":
        raise errors.SUBSCRIPTION_LEFT()
    change = _worth(quantities, before, prices) - sum(
        r["quantity"] * r["unit_price"] for r in before.values()
    )
    if deal["nature"] == "free_choice" and change > 0:
        if envelope is not None:
            _check_payment(node, member, sub_id, envelope, {change})
            signed = envelope
            payer = lambda _: post(node, signed)  # noqa: E731
        if payer is None:
            raise errors.PAYMENT_NEEDED(amount=_money(node, change))
    paid_by = envelope.order if envelope is not None and change > 0 else None
    with node.engine.begin() as conn:
        waiting = repo.holding(conn, sub_id, distribution_id)
        if waiting and repo.payment_of_order(conn, sub_id, waiting) is None:
            raise errors.ORDER_BEING_PAID()
        if waiting:  # its payment came (recorded by the reaction): the order stands
            repo.drop_hold(conn, waiting)
        _reserve(node, conn, deal, sub_id, distribution_id, quantities, prices, change)
        if paid_by is not None and deal["nature"] == "free_choice":
            _hold(conn, paid_by, sub_id, distribution_id, before)
    transfer_id = None
    if deal["nature"] == "free_choice" and change > 0:
        assert payer is not None
        order_id = None if paid_by is None else str(paid_by.get("id", "")) or None
        try:
            transfer_id = payer(change).transfer_id
        except LedgerError:
            with node.engine.begin() as conn:  # the payment failed: the order is as it was
                now = {p: r["quantity"] for p, r in before.items()}
                _undo(conn, sub_id, distribution_id, quantities, now, before)
                if order_id:
                    repo.drop_hold(conn, order_id)
            raise
        _record(node, sub_id, transfer_id, change, deal["nature"], order_id)
        if order_id:
            with node.engine.begin() as conn:
                repo.drop_hold(conn, order_id)
    if deal["nature"] == "free_choice" and change < 0:
        with node.engine.begin() as conn:
            serial = repo.moves_count(conn, sub_id)  # never goes down: a new id each time
            _refund_excess(
                conn,
                _sub(conn, sub_id),
                f"o{distribution_id}-s{sub_id}-{serial}",
                "amap.order_lowered",
                limit=-change,
            )
        _post_moves(node, [sub_id])
    return Ordered(subscription(node, member, sub_id), change, transfer_id)


def _worth(quantities: dict[int, int], before: dict[int, Row], prices: dict[int, int]) -> int:
    total = 0
    for product, quantity in quantities.items():
        price = before[product]["unit_price"] if product in before else prices.get(product, 0)
        total += quantity * price
    return total


def _reserve(
    node: Node,
    conn: Connection,
    deal: Row,
    sub_id: int,
    distribution_id: int,
    quantities: dict[int, int],
    prices: dict[int, int],
    change: int,
) -> None:
    """Take the stock and write the lines, or nothing: the cut-off, the stock and the card
    are checked in the same transaction as the writes."""
    dist = repo.one(conn, distributions, distribution_id)
    if dist is None or dist["contract"] != deal["id"]:
        raise errors.UNKNOWN_DISTRIBUTION()
    if dist["state"] != "planned" or dist["cutoff_ms"] <= now_ms():
        raise errors.AFTER_CUTOFF()
    before = repo.lines_of(conn, sub_id, distribution_id)
    now_worth = sum(r["quantity"] * r["unit_price"] for r in before.values())
    if _worth(quantities, before, prices) - now_worth != change:
        raise errors.WRONG_PAYMENT(amount=_money(node, max(change, 0)), escrow=escrow(sub_id))
    offered = repo.stock_of(conn, distribution_id)
    for product in sorted(set(quantities) | set(before)):
        if product not in offered:
            raise errors.NOT_IN_CONTRACT()
        old = before[product]["quantity"] if product in before else 0
        new = quantities.get(product, 0)
        if new > old and not repo.take_stock(conn, distribution_id, product, new - old):
            name = next(
                (p["name"] for p in repo.products_of(conn, deal["producer"]) if p["id"] == product),
                str(product),
            )
            raise errors.BEYOND_STOCK(remaining=offered[product], product=name)
        if new < old:
            repo.put_back_stock(conn, distribution_id, product, old - new)
        price = before[product]["unit_price"] if product in before else prices[product]
        if new != old:
            repo.set_line(conn, sub_id, distribution_id, product, new, price)
    if deal["nature"] == "prepaid":
        taken = conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == sub_id, subscriptions.c.credit >= change)
            .values(credit=subscriptions.c.credit - change)
        )
        if taken.rowcount != 1:
            credit = _sub(conn, sub_id)["credit"]
            raise errors.BEYOND_CREDIT(cost=_money(node, change), credit=_money(node, credit))


def _hold(
    conn: Connection,
    paid_by: dict[str, Any],
    sub_id: int,
    distribution_id: int,
    before: dict[int, Row],
) -> None:
    """Keep what the basket was before this order, until its payment is recorded."""
    kept = {str(p): [r["quantity"], r["unit_price"]] for p, r in before.items()}
    repo.hold(
        conn,
        str(paid_by.get("id", "")),
        sub_id,
        distribution_id,
        lines_before=json.dumps(kept),
        expires_ms=int(paid_by.get("expires", 0)) * 1000,
    )


# A signed payment is refused once expired; one in flight as it expires has this long to land.
HOLD_MARGIN_MS = 120_000


def give_back_unpaid(node: Node, at_ms: int) -> int:
    """Orders whose payment never reached the log (the node stopped between taking the stock
    and posting the payment) and can no longer reach it: their stock and lines go back to
    what they were. Returns how many were given back."""
    with node.ledger.reading() as conn:
        expired = repo.expired_holds(conn, at_ms - HOLD_MARGIN_MS)
    undone = 0
    for held in expired:
        sub_id, dist_id = held["subscription"], held["distribution"]
        with node.engine.begin() as conn:
            paid = repo.payment_of_order(conn, sub_id, held["order_id"]) is not None
            dist = repo.one(conn, distributions, dist_id)
            if not paid and dist is not None and dist["state"] == "planned":
                kept = json.loads(held["lines_before"])
                before = {int(p): {"quantity": q, "unit_price": u} for p, (q, u) in kept.items()}
                now = {p: r["quantity"] for p, r in repo.lines_of(conn, sub_id, dist_id).items()}
                back_to = {p: r["quantity"] for p, r in before.items()}
                _undo(conn, sub_id, dist_id, now, back_to, before)
                undone += 1
            repo.drop_hold(conn, held["order_id"])
    return undone


def _undo(
    conn: Connection,
    sub_id: int,
    distribution_id: int,
    ordered: dict[int, int],
    back_to: dict[int, int],
    before: dict[int, Row],
) -> None:
    for product in set(ordered) | set(back_to):
        new, old = ordered.get(product, 0), back_to.get(product, 0)
        if new > old:
            repo.put_back_stock(conn, distribution_id, product, new - old)
        elif new < old:  # taken back, if nobody took those units meanwhile
            repo.take_stock(conn, distribution_id, product, old - new)
        price = before[product]["unit_price"] if product in before else 1
        repo.set_line(conn, sub_id, distribution_id, product, old, price)


def declare_absence(node: Node, member: Member, sub_id: int, distribution_id: int) -> Row:
    """A joker: the basket is skipped, before the cut-off and within the contract's limit;
    carried to the next distribution or refunded, as the contract says."""
    with node.engine.begin() as conn:
        found, deal = _mine(conn, member, sub_id)
        if deal["nature"] != "subscription":
            raise errors.NOT_SUBSCRIPTION()
        if found["state"] != "active":
            raise errors.SUBSCRIPTION_LEFT()
        if found["effective_ms"] is None:
            raise errors.FIRST_PAYMENT_NEEDED()
        dist = repo.one(conn, distributions, distribution_id)
        if dist is None or dist["contract"] != deal["id"]:
            raise errors.UNKNOWN_DISTRIBUTION()
        if dist["state"] != "planned" or dist["cutoff_ms"] <= now_ms():
            raise errors.AFTER_CUTOFF()
        if repo.jokers_used(conn, sub_id) >= deal["jokers"]:
            raise errors.NO_JOKERS(most=deal["jokers"])
        basket = repo.lines_of(conn, sub_id, distribution_id)
        if not basket:
            raise errors.ALREADY_ABSENT()
        if not repo.settle(conn, distribution_id, sub_id, "absent", 0):
            raise errors.ALREADY_ABSENT()
        conn.execute(insert(jokers).values(subscription=sub_id, distribution=distribution_id))
        if deal["joker_rule"] == "carry":
            later = [
                d
                for d in repo.open_distributions(conn, deal["id"], now_ms())
                if d["id"] != distribution_id and d["cutoff_ms"] >= dist["cutoff_ms"]
            ]
            if not later:
                raise errors.NO_NEXT_DISTRIBUTION()
            target = repo.lines_of(conn, sub_id, later[0]["id"])
            for product, line in basket.items():
                more = target[product]["quantity"] if product in target else 0
                repo.set_line(
                    conn,
                    sub_id,
                    later[0]["id"],
                    product,
                    line["quantity"] + more,
                    line["unit_price"],
                )
            repo.drop_lines(conn, sub_id, distribution_id)
        else:
            worth = repo.value_of(conn, sub_id, distribution_id)
            repo.drop_lines(conn, sub_id, distribution_id)
            conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id == sub_id)
                .values(total=subscriptions.c.total - worth)
            )
            _refund_excess(conn, found, f"j{distribution_id}-s{sub_id}", "amap.joker", worth)
    _post_moves(node, [sub_id])
    return subscription(node, member, sub_id)


def leave(node: Node, member: Member, sub_id: int) -> Row:
    """Leave the contract early: what is not yet delivered comes back, per the contract's
    rule (all of it, or all but the next `notice` distributions)."""
    with node.engine.begin() as conn:
        found, deal = _mine(conn, member, sub_id)
        if found["effective_ms"] is None and found["state"] == "active":
            raise errors.FIRST_PAYMENT_NEEDED()
        left = conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == sub_id, subscriptions.c.state == "active")
            .values(state="left")
        )
        if left.rowcount != 1:
            raise errors.SUBSCRIPTION_LEFT()
        coming = [
            d
            for d in repo.open_distributions(conn, deal["id"], now_ms())
            if repo.lines_of(conn, sub_id, d["id"])
        ]
        kept = deal["notice"] if deal["leave_rule"] == "notice" else 0
        for dist in coming[kept:]:
            for product, line in repo.lines_of(conn, sub_id, dist["id"]).items():
                repo.put_back_stock(conn, dist["id"], product, line["quantity"])
            repo.drop_lines(conn, sub_id, dist["id"])
        conn.execute(update(subscriptions).where(subscriptions.c.id == sub_id).values(credit=0))
        _refund_excess(conn, found, f"leave-s{sub_id}", "amap.left")
    _post_moves(node, [sub_id])
    return subscription(node, member, sub_id)


# -- the money: decided in the database, then posted -----------------------------------------


def _give_back(conn: Connection, deal: Row, sub: Row, worth: int, event: str, rule: str) -> None:
    if deal["nature"] == "prepaid":  # stays on the card
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == sub["id"])
            .values(credit=subscriptions.c.credit + worth)
        )
        return
    if deal["nature"] == "subscription":
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == sub["id"])
            .values(total=subscriptions.c.total - worth)
        )
    _refund_excess(conn, sub, event, rule, worth)


def _refund_excess(
    conn: Connection, sub: Row, event: str, rule: str, limit: int | None = None
) -> None:
    """Refund what the escrow holds beyond the baskets still to come (and the prepaid card),
    at most `limit`."""
    fresh = _sub(conn, sub["id"])
    keep = repo.undelivered_value(conn, sub["id"]) + fresh["credit"]
    excess = max(0, repo.held(conn, sub["id"]) - keep)
    if limit is not None:
        excess = min(excess, limit)
    _draw(conn, sub["id"], excess, "escrow_refund", account(sub["member"]), rule, event)


def _draw(
    conn: Connection, sub_id: int, amount: int, kind: str, to: str, rule: str, event: str
) -> int:
    """Decide a release or refund of up to `amount`, drawn from the subscription's payments
    in order (one move per payment: the ledger takes out of a payment at most what it
    brought). Returns what was drawn: less than asked if the escrow holds less."""
    drawn = 0
    while drawn < amount:
        unspent = repo.unspent_payments(conn, sub_id)
        if not unspent:
            break
        payment = unspent[0]
        take = min(payment["unspent"], amount - drawn)
        if not repo.spend(conn, payment["transfer_id"], take):
            continue  # spent meanwhile: read again
        conn.execute(
            insert(moves).values(
                client_id=f"amap-{event}-p{payment['transfer_id']}",
                subscription=sub_id,
                payment=payment["transfer_id"],
                kind=kind,
                rule=rule,
                to_account=to,
                amount=take,
            )
        )
        drawn += take
    return drawn


def _post_moves(node: Node, subs: list[int] | None = None) -> None:
    """Post the decided releases and refunds not posted yet. The client id names the event:
    posted twice, the money moves once."""
    with node.ledger.reading() as conn:
        pending = repo.pending_moves(conn, subs)
    for move in pending:
        signed = sign_as(
            node,
            KEY,
            move["kind"],
            move["client_id"],
            rule=move["rule"],
            ref=move["payment"],
            to=move["to_account"],
            amount=move["amount"],
            currency=node.ledger.chart.local,
            **{"from": escrow(move["subscription"])},
        )
        posted = posted_or_existing(node, KEY, signed)
        with node.engine.begin() as conn:
            conn.execute(
                update(moves)
                .where(moves.c.client_id == move["client_id"], moves.c.transfer_id.is_(None))
                .values(transfer_id=posted.transfer_id if posted else 0)
            )


def post_pending(node: Node, at_ms: int | None = None) -> str:
    """The job: post any release or refund decided but not posted, and give back orders
    whose payment can no longer come (a crash in between, either way)."""
    with node.ledger.reading() as conn:
        count = len(repo.pending_moves(conn))
    _post_moves(node)
    undone = give_back_unpaid(node, now_ms() if at_ms is None else at_ms)
    said = f"{count} moves posted"
    return said if not undone else f"{said}, {undone} unpaid orders given back"


def coordinator_view(node: Node, who: Member) -> list[Row]:
    with node.ledger.reading() as conn:
        ids = (
            [c["id"] for c in repo.all_contracts(conn)]
            if who.role == "admin"
            else (repo.coordinated_by(conn, who.id))
        )
        out = []
        for contract_id in sorted(ids):
            deal = repo.one(conn, contracts, contract_id)
            assert deal is not None
            deal["distributions"] = repo.distributions_of(conn, contract_id)
            for dist in deal["distributions"]:
                dist["stock"] = repo.stock_of(conn, dist["id"])
                dist["takers"] = len(repo.subscribers_at(conn, dist["id"]))
            out.append(deal)
    return out


def sheet(node: Node, who: Member, distribution_id: int) -> tuple[Row, list[Row]]:
    """Who takes what at a distribution (coordinators, and the contract's producer), and
    whether each basket is paid: one whose instalment was not paid by the cut-off is to
    settle at the distribution (and is not handed over unless it is)."""
    with node.ledger.reading() as conn:
        found = repo.one(conn, distributions, distribution_id)
        if found is None:
            raise errors.UNKNOWN_DISTRIBUTION()
        deal = repo.one(conn, contracts, found["contract"])
        assert deal is not None
        if deal["producer"] != who.id:
            _coordinate(conn, who, deal["id"])
        rows = repo.sheet_rows(conn, distribution_id)
        place = repo.one(conn, places, found["place"])
        at = min(now_ms(), int(found["cutoff_ms"]))
        paid = {
            sub: deal["nature"] != "subscription"
            or (
                _covered(conn, sub, distribution_id, at)
                and repo.settled(conn, distribution_id, sub) != "unpaid"
            )
            for sub in {r["subscription"] for r in rows}
        }
    names = members_service.names(node, {r["member"] for r in rows})
    for r in rows:
        r["name"] = names.get(r["member"], r["member"])
        r["paid"] = paid[r["subscription"]]
    found.update(title=deal["title"], place_name=place["name"] if place else "")
    return found, rows
