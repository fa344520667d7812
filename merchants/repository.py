"""Every query of the merchants module: trade details and reconversion requests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select

from merchants.models import merchants


def insert_merchant(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(merchants).values(**row))


def merchant(conn: Connection, member_id: str) -> RowMapping | None:
    query = select(merchants).where(merchants.c.member_id == member_id)
    return conn.execute(query).mappings().first()
