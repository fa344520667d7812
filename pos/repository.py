"""The counter's queries: invoices, and the payments a shop received (read from the ledger's
transfers and postings, which stay the only record of money)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from ledger.models import accounts, postings, transfers
from pos.models import pos_invoices

SALES = ("payment", "collection")  # what a shop is paid by: a customer's order, or its own

# The queries of every sale at the counter are made once, with parameters: a statement built
# anew costs more to make and to look up in SQLAlchemy's cache than the database spends on it.
_INSERT_INVOICE = insert(pos_invoices)
_INVOICE = select(pos_invoices).where(pos_invoices.c.id == bindparam("invoice_id"))
_USING = select(transfers.c.id, transfers.c.order_json, transfers.c.created_ms).where(
    transfers.c.once_key == bindparam("once_key")
)


def insert_invoice(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(_INSERT_INVOICE, values)


def invoice(conn: Connection, invoice_id: str) -> Any | None:
    return conn.execute(_INVOICE, {"invoice_id": invoice_id}).mappings().first()


def cancel(conn: Connection, invoice_id: str, merchant_id: str, now_ms: int) -> int:
    query = (
        update(pos_invoices)
        .where(
            pos_invoices.c.id == invoice_id,
            pos_invoices.c.merchant_id == merchant_id,
            pos_invoices.c.cancelled_ms.is_(None),
        )
        .values(cancelled_ms=now_ms)
    )
    return conn.execute(query).rowcount


def transfer_using(conn: Connection, once_key: str) -> Any | None:
    """The transfer that used this one-time token (an invoice's payment), if any."""
    return conn.execute(_USING, {"once_key": once_key}).mappings().first()


_refunds = transfers.alias("refunds")
_refunded = postings.alias("refunded")
# Cents refunded so far against a transfer (refunds name the payment they give back).
_REFUNDED_SO_FAR = (
    select(func.coalesce(func.sum(_refunded.c.amount), 0))
    .join(_refunds, _refunds.c.id == _refunded.c.transfer_id)
    .where(_refunds.c.ref_id == transfers.c.id, _refunds.c.kind == "refund", _refunded.c.amount > 0)
    .scalar_subquery()
)


def _received(account: Any) -> Any:
    """Movements of `account` by payments and refunds: (transfer, amount, order, time, and
    what was refunded of it so far)."""
    return (
        select(
            transfers.c.id,
            transfers.c.kind,
            transfers.c.order_json,
            transfers.c.created_ms,
            postings.c.amount,
            _REFUNDED_SO_FAR.label("refunded"),
        )
        .join(postings, postings.c.transfer_id == transfers.c.id)
        .join(accounts, accounts.c.id == postings.c.account_id)
        .where(accounts.c.code == account)
    )


_RECEIVED_AFTER = (
    _received(bindparam("account"))
    .where(transfers.c.id > bindparam("after"), transfers.c.kind.in_(SALES), postings.c.amount > 0)
    .order_by(transfers.c.id)
    .limit(bindparam("limit"))
)


def received_after(conn: Connection, account: str, after: int, limit: int) -> Sequence[Any]:
    """Payments to `account` with transfer ids above `after`, oldest first."""
    found = conn.execute(_RECEIVED_AFTER, {"account": account, "after": after, "limit": limit})
    return found.mappings().all()


def last_received(conn: Connection, account: str) -> int:
    """The latest payment to `account` (0 if none): where a live feed starts."""
    query = (
        select(func.coalesce(func.max(postings.c.transfer_id), 0))
        .join(accounts, accounts.c.id == postings.c.account_id)
        .where(accounts.c.code == account, postings.c.amount > 0)
    )
    return int(conn.execute(query).scalar_one())


def movements_between(conn: Connection, account: str, start_ms: int, end_ms: int) -> Sequence[Any]:
    """Payments to and refunds from `account` posted in [start, end), in order."""
    query = (
        _received(account)
        .where(
            transfers.c.kind.in_((*SALES, "refund")),
            transfers.c.created_ms >= start_ms,
            transfers.c.created_ms < end_ms,
        )
        .order_by(transfers.c.id)
    )
    return conn.execute(query).mappings().all()


def payment(conn: Connection, transfer_id: int) -> Any | None:
    query = select(transfers.c.id, transfers.c.kind, transfers.c.order_json).where(
        transfers.c.id == transfer_id
    )
    return conn.execute(query).mappings().first()
