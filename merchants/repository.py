"""Every query of the merchants module: reconversion requests, with who asked (the members'
tables are read, never written, here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from ledger.models import transfers
from members.models import members, merchants
from merchants.models import reconversions

# -- reconversion requests -----------------------------------------------------------------


def insert_reconversion(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(reconversions).values(**row))


def reconversion(conn: Connection, reconversion_id: int) -> RowMapping | None:
    query = select(reconversions).where(reconversions.c.id == reconversion_id)
    return conn.execute(query).mappings().first()


def reconversion_of_redemption(conn: Connection, redemption_id: int) -> RowMapping | None:
    query = select(reconversions).where(reconversions.c.redemption_id == redemption_id)
    return conn.execute(query).mappings().first()


def reconversions_of(conn: Connection, member_id: str, limit: int) -> list[RowMapping]:
    query = (
        select(reconversions)
        .where(reconversions.c.member_id == member_id)
        .order_by(reconversions.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query).mappings())


def reconversions_by_status(conn: Connection, status: str, limit: int) -> list[RowMapping]:
    """Requests in one state with who asked (name, trade); pending ones oldest first, as
    the treasurer pays them, decided ones newest first."""
    order = reconversions.c.id if status == "pending" else reconversions.c.id.desc()
    query = (
        select(reconversions, members.c.display_name, merchants.c.trade_name)
        .join(members, members.c.id == reconversions.c.member_id)
        .outerjoin(merchants, merchants.c.member_id == reconversions.c.member_id)
        .where(reconversions.c.status == status)
        .order_by(order)
        .limit(limit)
    )
    return list(conn.execute(query).mappings())


def decide(conn: Connection, reconversion_id: int, **values: Any) -> bool:
    """Record the decision on a pending request; False if it was no longer pending."""
    done = conn.execute(
        update(reconversions)
        .where(reconversions.c.id == reconversion_id, reconversions.c.status == "pending")
        .values(**values)
    )
    return done.rowcount == 1


def claim_decision(conn: Connection, reconversion_id: int, decision_id: int, by: str) -> None:
    """Name who decided, when the decision was recorded from the ledger without it (a
    listing rebuilt it between the treasurer's post and their own record)."""
    conn.execute(
        update(reconversions)
        .where(
            reconversions.c.id == reconversion_id,
            reconversions.c.decision_id == decision_id,
            reconversions.c.decided_by.is_(None),
        )
        .values(decided_by=by)
    )


# -- the ledger's side: redemptions and what settled them ----------------------------------


def unrecorded_redemptions(conn: Connection, initiator: str | None = None) -> list[RowMapping]:
    """Redemptions of members' wallets with no reconversion row (the node stopped between
    the two writes); only those of someone who is a member here."""
    recorded = select(reconversions.c.id).where(reconversions.c.redemption_id == transfers.c.id)
    # "member:<id>" -> <id>: SQL counts from 1, so the id starts at character 8.
    known = select(members.c.id).where(members.c.id == func.substr(transfers.c.initiator, 8))
    query = select(transfers.c.id, transfers.c.order_json, transfers.c.created_ms).where(
        transfers.c.kind == "redemption",
        transfers.c.initiator.like("member:%"),
        ~recorded.exists(),
        known.exists(),
    )
    if initiator is not None:
        query = query.where(transfers.c.initiator == initiator)
    return list(conn.execute(query).mappings())


def settlements(conn: Connection, redemption_ids: list[int]) -> dict[int, RowMapping]:
    """The payout or correction of each redemption that has one (there is at most one)."""
    if not redemption_ids:
        return {}
    c = transfers.c
    query = select(
        c.id, c.ref_id, c.kind, c.initiator, c.client_id, c.order_json, c.created_ms
    ).where(
        transfers.c.ref_id.in_(redemption_ids),
        transfers.c.kind.in_(("payout", "correction")),
    )
    return {row["ref_id"]: row for row in conn.execute(query).mappings()}


def pending_redemptions(conn: Connection) -> dict[int, int]:
    """The requests still pending: redemption id -> reconversion id."""
    query = select(reconversions.c.redemption_id, reconversions.c.id).where(
        reconversions.c.status == "pending"
    )
    return {int(row[0]): int(row[1]) for row in conn.execute(query)}
