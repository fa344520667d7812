"""The exports' queries: transfers of a period with their postings, read in pages by id so
that a ledger of any size is written without holding it in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from ledger.models import accounts, postings, transfers

PAGE = 2000  # transfers read per query


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    currency: str
    amount: int  # cents, as the ledger signs them: + into the account, - out of it


@dataclass(frozen=True, slots=True)
class Movement:
    """A transfer as the exports read it: its fixed facts and its postings."""

    id: int
    created_ms: int
    kind: str
    initiator: str
    client_id: str
    ref_id: int | None
    order_json: str
    legs: tuple[Leg, ...]

    @property
    def fields(self) -> dict[str, Any]:
        # Read only when asked: the FEC needs it for a few transfers of many.
        found: dict[str, Any] = json.loads(self.order_json)
        return found


def _in_period(start_ms: int, end_ms: int) -> Any:
    return (transfers.c.created_ms >= start_ms) & (transfers.c.created_ms < end_ms)


def count(conn: Connection, start_ms: int, end_ms: int) -> int:
    query = select(func.count()).select_from(transfers).where(_in_period(start_ms, end_ms))
    return int(conn.scalar(query) or 0)


def movements(conn: Connection, start_ms: int, end_ms: int) -> Iterator[list[Movement]]:
    """The period's transfers in id order (the order they were committed in), a page at a
    time."""
    after = 0
    c = transfers.c
    while True:
        query = (
            select(c.id, c.created_ms, c.kind, c.initiator, c.client_id, c.ref_id, c.order_json)
            .where(_in_period(start_ms, end_ms), c.id > after)
            .order_by(c.id)
            .limit(PAGE)
        )
        rows = conn.execute(query).all()
        if not rows:
            return
        legs = _legs(conn, rows[0].id, rows[-1].id)
        yield [
            Movement(
                r.id,
                r.created_ms,
                r.kind,
                r.initiator,
                r.client_id,
                r.ref_id,
                r.order_json,
                tuple(legs.get(r.id, ())),
            )
            for r in rows
        ]
        after = rows[-1].id


def _legs(conn: Connection, first: int, last: int) -> dict[int, list[Leg]]:
    query = (
        select(postings.c.transfer_id, accounts.c.code, postings.c.currency, postings.c.amount)
        .join(accounts, accounts.c.id == postings.c.account_id)
        .where(postings.c.transfer_id.between(first, last))
        .order_by(postings.c.transfer_id, postings.c.account_id)
    )
    found: dict[int, list[Leg]] = {}
    for tid, code, currency, amount in conn.execute(query).all():
        found.setdefault(tid, []).append(Leg(code, currency, int(amount)))
    return found


def balances_before(conn: Connection, start_ms: int) -> list[Leg]:
    """What each account held when the period began (replayed from postings, not the
    running balance: a period may end in the past)."""
    query = (
        select(accounts.c.code, postings.c.currency, func.sum(postings.c.amount))
        .join(accounts, accounts.c.id == postings.c.account_id)
        .join(transfers, transfers.c.id == postings.c.transfer_id)
        .where(transfers.c.created_ms < start_ms)
        .group_by(accounts.c.code, postings.c.currency)
        .order_by(accounts.c.code)
    )
    return [
        Leg(code, currency, int(total)) for code, currency, total in conn.execute(query) if total
    ]


def accounts_moved(conn: Connection, start_ms: int, end_ms: int) -> list[tuple[str, str]]:
    """(code, currency) of the accounts the period's transfers post to."""
    query = (
        select(accounts.c.code, accounts.c.currency)
        .where(
            accounts.c.id.in_(
                select(postings.c.account_id)
                .join(transfers, transfers.c.id == postings.c.transfer_id)
                .where(_in_period(start_ms, end_ms))
            )
        )
        .order_by(accounts.c.code)
    )
    return [(code, currency) for code, currency in conn.execute(query)]
