"""Every query of the paper notes: the series' rows, and the notes' transfers read from the
ledger's tables (by the one-time tokens they used up)."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from ledger.models import accounts, postings, transfers
from pos.notes.models import note_series

NOTE_KINDS = ("note_dispatch", "note_sale", "note_deposit", "note_void")


def insert_series(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(note_series).values(**values))


def series(conn: Connection, series_id: str) -> RowMapping | None:
    return conn.execute(select(note_series).where(note_series.c.id == series_id)).mappings().first()


def all_series(conn: Connection) -> list[RowMapping]:
    query = select(note_series).order_by(note_series.c.created_ms.desc(), note_series.c.id)
    return list(conn.execute(query).mappings())


def mark_voided(conn: Connection, series_id: str, at_ms: int) -> None:
    conn.execute(
        update(note_series)
        .where(note_series.c.id == series_id, note_series.c.state == "printed")
        .values(state="voided", voided_ms=at_ms)
    )


def prints(conn: Connection) -> list[RowMapping]:
    """Every `note_print` transfer (to rebuild the rows a crash left unwritten)."""
    query = select(transfers.c.id, transfers.c.order_json, transfers.c.created_ms).where(
        transfers.c.kind == "note_print"
    )
    return list(conn.execute(query).mappings())


def by_once(conn: Connection, keys: Collection[str]) -> dict[str, RowMapping]:
    """The transfers that used these one-time tokens, by token."""
    if not keys:
        return {}
    query = select(
        transfers.c.id,
        transfers.c.kind,
        transfers.c.once_key,
        transfers.c.order_json,
        transfers.c.created_ms,
    ).where(transfers.c.once_key.in_(list(keys)))
    return {row["once_key"]: row for row in conn.execute(query).mappings()}


def moves(conn: Connection, series_id: str) -> list[RowMapping]:
    """Every move of the notes of a series, in the order it was posted."""
    query = (
        select(
            transfers.c.id,
            transfers.c.kind,
            transfers.c.once_key,
            transfers.c.order_json,
            transfers.c.created_ms,
        )
        .where(
            transfers.c.kind.in_(NOTE_KINDS),
            transfers.c.once_key.like(f"note:{series_id}:%"),
        )
        .order_by(transfers.c.id)
    )
    return list(conn.execute(query).mappings())


def at_office(conn: Connection, office_account: str) -> list[RowMapping]:
    """The dispatches to an office whose note has not left it (sold or voided): the notes
    the office holds, oldest first."""
    left = transfers.alias("left")
    gone = (
        select(left.c.id)
        .where(left.c.once_key == func.replace(transfers.c.once_key, ":stock", ":office"))
        .exists()
    )
    query = (
        select(transfers.c.id, transfers.c.once_key, transfers.c.order_json)
        .join(postings, postings.c.transfer_id == transfers.c.id)
        .join(accounts, accounts.c.id == postings.c.account_id)
        .where(transfers.c.kind == "note_dispatch", accounts.c.code == office_account, ~gone)
        .order_by(transfers.c.id)
    )
    return list(conn.execute(query).mappings())


def till_from_notes(conn: Connection, till: str) -> tuple[int, int]:
    """(euros notes sold brought to the till, euros the till took to the paper reserve)."""
    account = select(accounts.c.id).where(accounts.c.code == till).scalar_subquery()
    query = (
        select(transfers.c.kind, transfers.c.order_json, postings.c.amount)
        .join(postings, postings.c.transfer_id == transfers.c.id)
        .where(
            postings.c.account_id == account,
            transfers.c.kind.in_(("note_sale", "cash_deposit")),
        )
    )
    sold = deposited = 0
    for row in conn.execute(query).mappings():
        if row["kind"] == "note_sale":
            sold += int(row["amount"])
        elif json.loads(row["order_json"]).get("to") == "reserve:paper":
            deposited -= int(row["amount"])
    return sold, deposited


def offices(conn: Connection) -> list[str]:
    """The exchange offices' ids (each has a till, `office:<id>:cash`)."""
    query = (
        select(accounts.c.code).where(accounts.c.kind == "office_cash").order_by(accounts.c.code)
    )
    return [code.removeprefix("office:").removesuffix(":cash") for code in conn.scalars(query)]
