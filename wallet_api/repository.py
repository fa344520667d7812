"""The wallet's queries: a member's history read from the ledger's tables (the members'
tables: `members/repository.py`; card payments and Stripe events:
`wallet_api/cards/repository.py`)."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, and_, func, select

from ledger.models import accounts, postings, transfers


def history(
    conn: Connection,
    account_code: str,
    *,
    before: int | None,
    limit: int,
    incoming: bool = False,
) -> list[RowMapping]:
    """A member's movements, newest first: one row per transfer touching the account
    (with `incoming`, only those that credited it)."""
    account = select(accounts.c.id).where(accounts.c.code == account_code).scalar_subquery()
    query = (
        select(
            transfers.c.id,
            transfers.c.kind,
            transfers.c.order_json,
            transfers.c.created_ms,
            postings.c.amount,
        )
        .join(postings, postings.c.transfer_id == transfers.c.id)
        .where(postings.c.account_id == account)
        .order_by(transfers.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(transfers.c.id < before)
    if incoming:
        query = query.where(postings.c.amount > 0)
    return list(conn.execute(query).mappings())


def touches(conn: Connection, transfer_id: int, account_code: str) -> bool:
    query = (
        select(func.count())
        .select_from(postings.join(accounts, accounts.c.id == postings.c.account_id))
        .where(and_(postings.c.transfer_id == transfer_id, accounts.c.code == account_code))
    )
    return bool(conn.scalar(query))
