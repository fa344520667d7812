"""Every query of the exchange offices: tills, their cash-ins and deposits (read from the
ledger's tables), and the deposits' reconciliation rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from ledger.models import accounts, postings, transfers
from wallet_api.office.models import office_deposits


def tills(conn: Connection) -> list[RowMapping]:
    """Every office's till account (`office:<id>:cash`) with its balance, by code."""
    query = (
        select(accounts.c.id, accounts.c.code, accounts.c.balance)
        .where(accounts.c.kind == "office_cash")
        .order_by(accounts.c.code)
    )
    return list(conn.execute(query).mappings())


def till_movements(
    conn: Connection, till: str, kind: str, *, limit: int | None = None
) -> list[RowMapping]:
    """Transfers of one kind that touched a till, newest first: id, order, time, amount."""
    account = select(accounts.c.id).where(accounts.c.code == till).scalar_subquery()
    query = (
        select(
            transfers.c.id,
            transfers.c.order_json,
            transfers.c.created_ms,
            postings.c.amount,
        )
        .join(postings, postings.c.transfer_id == transfers.c.id)
        .where(postings.c.account_id == account, transfers.c.kind == kind)
        .order_by(transfers.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).mappings())


def till_totals(conn: Connection, till: str) -> dict[str, tuple[int, int]]:
    """Per transfer kind: (sum of the till's postings, number of transfers)."""
    account = select(accounts.c.id).where(accounts.c.code == till).scalar_subquery()
    query = (
        select(transfers.c.kind, func.sum(postings.c.amount), func.count())
        .join(postings, postings.c.transfer_id == transfers.c.id)
        .where(postings.c.account_id == account)
        .group_by(transfers.c.kind)
    )
    return {row[0]: (int(row[1]), int(row[2])) for row in conn.execute(query)}


# -- deposits and their reconciliation -----------------------------------------------------


def deposits(
    conn: Connection, *, office: str | None = None, limit: int | None = None
) -> list[RowMapping]:
    """Deposit rows joined with their transfer's amount, newest first."""
    query = (
        select(office_deposits, transfers.c.order_json)
        .join(transfers, transfers.c.id == office_deposits.c.transfer_id)
        .order_by(office_deposits.c.transfer_id.desc())
    )
    if office is not None:
        query = query.where(office_deposits.c.office == office)
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).mappings())


def unreconciled(conn: Connection, office: str) -> list[RowMapping]:
    query = (
        select(office_deposits, transfers.c.order_json)
        .join(transfers, transfers.c.id == office_deposits.c.transfer_id)
        .where(office_deposits.c.office == office, office_deposits.c.reconciled_ms.is_(None))
        .order_by(office_deposits.c.transfer_id)
    )
    return list(conn.execute(query).mappings())


def deposit(conn: Connection, transfer_id: int) -> RowMapping | None:
    query = (
        select(office_deposits, transfers.c.order_json)
        .join(transfers, transfers.c.id == office_deposits.c.transfer_id)
        .where(office_deposits.c.transfer_id == transfer_id)
    )
    return conn.execute(query).mappings().first()


def insert_deposit(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(office_deposits).values(**row))


def unrecorded_deposits(conn: Connection) -> list[RowMapping]:
    """Cash deposits in the ledger without their row (the node stopped in between)."""
    recorded = select(office_deposits.c.transfer_id).where(
        office_deposits.c.transfer_id == transfers.c.id
    )
    query = select(transfers.c.id, transfers.c.order_json, transfers.c.created_ms).where(
        transfers.c.kind == "cash_deposit", ~recorded.exists()
    )
    return list(conn.execute(query).mappings())


def reconciled_by_hand(conn: Connection, transfer_ids: Sequence[int]) -> list[RowMapping]:
    """The rows among these deposits that the treasurer marked reconciled by hand."""
    found: list[RowMapping] = []
    wanted = list(transfer_ids)
    for start in range(0, len(wanted), 500):
        query = select(office_deposits).where(
            office_deposits.c.transfer_id.in_(wanted[start : start + 500]),
            office_deposits.c.reconciled_ms.is_not(None),
        )
        found += conn.execute(query).mappings()
    return found


def reconcile(conn: Connection, transfer_id: int, *, bank_ref: str, by: str, at_ms: int) -> bool:
    """Record the bank reference once; False if the deposit was already reconciled."""
    done = conn.execute(
        update(office_deposits)
        .where(
            office_deposits.c.transfer_id == transfer_id,
            office_deposits.c.reconciled_ms.is_(None),
        )
        .values(bank_ref=bank_ref, reconciled_by=by, reconciled_ms=at_ms)
    )
    return done.rowcount == 1
