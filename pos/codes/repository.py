"""The queries of codes customers show (the short codes of their authorisations) and of
offline allowances (the certificates the node signed, and the device keys they name). Whether
a code was used is the ledger's to say: `pos.repository.transfer_using`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select

from ledger.models import keys
from pos.models import pos_authorisations, pos_certificates


def insert_presented(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(pos_authorisations).values(**values))


def presented(conn: Connection, code: str) -> Any | None:
    query = select(pos_authorisations).where(pos_authorisations.c.code == code)
    return conn.execute(query).mappings().first()


def presented_by_auth(conn: Connection, payer_id: str, auth_id: str) -> Any | None:
    query = select(pos_authorisations.c.code).where(
        pos_authorisations.c.payer_id == payer_id, pos_authorisations.c.auth_id == auth_id
    )
    return conn.execute(query).first()


def key_revoked(conn: Connection, key_id: str) -> bool:
    query = select(keys.c.revoked_ms).where(keys.c.key_id == key_id)
    return conn.execute(query).scalar_one_or_none() is not None


def insert_certificate(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(pos_certificates).values(**values))


def live_certificate_until(conn: Connection, member_id: str, now_ms: int) -> int | None:
    """Until when the member's latest live offline certificate runs, if one does."""
    query = select(func.max(pos_certificates.c.expires_ms)).where(
        pos_certificates.c.member_id == member_id, pos_certificates.c.expires_ms > now_ms
    )
    return conn.execute(query).scalar_one_or_none()


def key_of(conn: Connection, key_id: str) -> Any | None:
    query = select(keys.c.owner, keys.c.public_key, keys.c.revoked_ms).where(
        keys.c.key_id == key_id
    )
    return conn.execute(query).mappings().first()
