"""Every query of payouts: bank details (inserted, never updated), batches and their items."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, delete, insert, select, update

from merchants.models import reconversions
from merchants.payouts.models import bank_details, payout_batches, payout_holds, payout_items

# -- bank details ------------------------------------------------------------------------------


def current_details(conn: Connection, member_id: str) -> RowMapping | None:
    query = (
        select(bank_details)
        .where(bank_details.c.member_id == member_id)
        .order_by(bank_details.c.version.desc())
        .limit(1)
    )
    return conn.execute(query).mappings().first()


def details_history(conn: Connection, member_id: str) -> list[RowMapping]:
    query = (
        select(bank_details)
        .where(bank_details.c.member_id == member_id)
        .order_by(bank_details.c.version.desc())
    )
    return list(conn.execute(query).mappings())


def current_details_of(conn: Connection, member_ids: set[str]) -> dict[str, RowMapping]:
    if not member_ids:
        return {}
    query = (
        select(bank_details)
        .where(bank_details.c.member_id.in_(sorted(member_ids)))
        .order_by(bank_details.c.version)
    )
    # The latest version of each member wins, read in version order.
    return {row["member_id"]: row for row in conn.execute(query).mappings()}


def nonce_used(conn: Connection, nonce: str) -> bool:
    query = select(bank_details.c.id).where(bank_details.c.nonce == nonce)
    return conn.execute(query).first() is not None


def insert_details(conn: Connection, row: dict[str, Any]) -> int:
    query = insert(bank_details).values(**row).returning(bank_details.c.id)
    return int(conn.execute(query).scalar_one())


# -- batches -----------------------------------------------------------------------------------


def insert_batch(conn: Connection, row: dict[str, Any]) -> int:
    query = insert(payout_batches).values(**row).returning(payout_batches.c.id)
    return int(conn.execute(query).scalar_one())


def insert_items(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(payout_items), rows)


def batch(conn: Connection, batch_id: int) -> RowMapping | None:
    query = select(payout_batches).where(payout_batches.c.id == batch_id)
    return conn.execute(query).mappings().first()


def batch_of_client_id(conn: Connection, client_id: str) -> RowMapping | None:
    query = select(payout_batches).where(payout_batches.c.client_id == client_id)
    return conn.execute(query).mappings().first()


def batches(conn: Connection, limit: int) -> list[RowMapping]:
    query = (
        select(*(c for c in payout_batches.c if c.name != "sepa_xml"))
        .order_by(payout_batches.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query).mappings())


def items_of(conn: Connection, batch_id: int) -> list[RowMapping]:
    query = (
        select(payout_items, bank_details.c.iban, bank_details.c.bic, bank_details.c.holder)
        .join(bank_details, bank_details.c.id == payout_items.c.bank_details_id)
        .where(payout_items.c.batch_id == batch_id)
        .order_by(payout_items.c.reconversion_id)
    )
    return list(conn.execute(query).mappings())


def batched(conn: Connection, reconversion_ids: list[int]) -> dict[int, int]:
    """Reconversion id -> the batch, not cancelled, that holds it."""
    if not reconversion_ids:
        return {}
    query = select(payout_items.c.reconversion_id, payout_items.c.batch_id).where(
        payout_items.c.reconversion_id.in_(reconversion_ids),
        payout_items.c.released_ms.is_(None),
    )
    return {int(r[0]): int(r[1]) for r in conn.execute(query)}


def decide_batch(
    conn: Connection, batch_id: int, status: str, by: str, at_ms: int, bank_ref: str | None
) -> bool:
    """Unpaid -> paid or cancelled, once: false if it was no longer unpaid (someone else's
    decision got there first)."""
    query = (
        update(payout_batches)
        .where(payout_batches.c.id == batch_id, payout_batches.c.status == "unpaid")
        .values(status=status, decided_by=by, decided_ms=at_ms, bank_ref=bank_ref)
    )
    return conn.execute(query).rowcount == 1


def release_items(conn: Connection, batch_id: int, at_ms: int) -> None:
    query = (
        update(payout_items)
        .where(payout_items.c.batch_id == batch_id, payout_items.c.released_ms.is_(None))
        .values(released_ms=at_ms)
    )
    conn.execute(query)


def all_pending(conn: Connection, reconversion_ids: list[int]) -> bool:
    query = select(reconversions.c.status).where(reconversions.c.id.in_(reconversion_ids))
    return all(row[0] == "pending" for row in conn.execute(query))


# -- a reconversion paid alone, or put in a file: one or the other ------------------------------


def lock_reconversions(conn: Connection, reconversion_ids: list[int]) -> None:
    """Hold the requests' rows until the transaction ends, in id order (no deadlock between
    two lockers). PostgreSQL locks the rows; SQLite's writers already queue (BEGIN IMMEDIATE)."""
    query = (
        select(reconversions.c.id)
        .where(reconversions.c.id.in_(sorted(reconversion_ids)))
        .order_by(reconversions.c.id)
        .with_for_update()
    )
    conn.execute(query).all()


def hold_alone(conn: Connection, reconversion_id: int, by: str, at_ms: int) -> int | None:
    """Before a request is paid or rejected alone: its row locked, the live batch holding
    it (then nothing is written), or None and the hold written (kept if already there: a
    retry of the same decision)."""
    lock_reconversions(conn, [reconversion_id])
    holding = batched(conn, [reconversion_id]).get(reconversion_id)
    if holding is not None:
        return holding
    there = select(payout_holds.c.reconversion_id).where(
        payout_holds.c.reconversion_id == reconversion_id
    )
    if conn.execute(there).first() is None:
        conn.execute(
            insert(payout_holds).values(reconversion_id=reconversion_id, held_by=by, held_ms=at_ms)
        )
    return None


def release_hold(conn: Connection, reconversion_id: int) -> None:
    conn.execute(delete(payout_holds).where(payout_holds.c.reconversion_id == reconversion_id))


def held(conn: Connection, reconversion_ids: list[int]) -> dict[int, RowMapping]:
    """Reconversion id -> its hold, for those being paid or rejected alone."""
    if not reconversion_ids:
        return {}
    query = select(payout_holds).where(payout_holds.c.reconversion_id.in_(reconversion_ids))
    return {int(r["reconversion_id"]): r for r in conn.execute(query).mappings()}
