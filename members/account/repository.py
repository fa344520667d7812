"""Every query of one's access: the member's sessions, reset links, and the attempts
counted against asking for links and guessing the current password."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, delete, insert, select, update

from members.account.models import password_resets
from members.models import members, sessions

# -- sessions --------------------------------------------------------------------------------


def touch_session(conn: Connection, token_hash: bytes, now_ms: int, seen: dict[str, Any]) -> None:
    """The session's last use (never moved back), and where from."""
    conn.execute(
        update(sessions)
        .where(sessions.c.token_hash == token_hash, sessions.c.last_seen_ms < now_ms)
        .values(last_seen_ms=now_ms, **seen)
    )


def sessions_of(
    conn: Connection, member_id: str, now_ms: int, idle_since_ms: int
) -> list[RowMapping]:
    """The member's sessions still open (a person's and their counter devices'), the most
    recently used first."""
    query = (
        select(sessions)
        .where(
            sessions.c.member_id == member_id,
            sessions.c.expires_ms > now_ms,
            sessions.c.last_seen_ms > idle_since_ms,
        )
        .order_by(sessions.c.last_seen_ms.desc(), sessions.c.created_ms.desc())
    )
    return list(conn.execute(query).mappings())


def end_sessions(conn: Connection, member_id: str, hashes: list[bytes]) -> int:
    """End these sessions of the member; how many were ended."""
    if not hashes:
        return 0
    done = conn.execute(
        delete(sessions).where(sessions.c.member_id == member_id, sessions.c.token_hash.in_(hashes))
    )
    return int(done.rowcount)


def end_person_sessions(conn: Connection, member_id: str, keep: bytes | None = None) -> int:
    """End the member's own sessions (`wallet`), but `keep`; a counter device's (`pos`) is
    the shop's till and stays."""
    query = delete(sessions).where(sessions.c.member_id == member_id, sessions.c.scope == "wallet")
    if keep is not None:
        query = query.where(sessions.c.token_hash != keep)
    return int(conn.execute(query).rowcount)


def set_password(conn: Connection, member_id: str, password_hash: str) -> None:
    conn.execute(
        update(members).where(members.c.id == member_id).values(password_hash=password_hash)
    )


# -- reset links -----------------------------------------------------------------------------


def insert_reset(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(password_resets).values(**row))


def reset_by_token(conn: Connection, token_hash: bytes) -> RowMapping | None:
    query = select(password_resets).where(password_resets.c.token_hash == token_hash)
    return conn.execute(query).mappings().first()


def use_reset(conn: Connection, reset_id: int, now_ms: int) -> bool:
    """Use the link, if it is still unused and unexpired: the one UPDATE that decides which
    of two clicks sets the password."""
    done = conn.execute(
        update(password_resets)
        .where(
            password_resets.c.id == reset_id,
            password_resets.c.used_ms.is_(None),
            password_resets.c.expires_ms > now_ms,
        )
        .values(used_ms=now_ms)
    )
    return done.rowcount == 1


def withdraw_resets(conn: Connection, member_id: str, now_ms: int) -> None:
    """Links of the member not used yet can no longer be (a newer one, or the password
    set another way)."""
    conn.execute(
        update(password_resets)
        .where(password_resets.c.member_id == member_id, password_resets.c.used_ms.is_(None))
        .values(used_ms=now_ms)
    )


# -- attempts --------------------------------------------------------------------------------


def forget_resets(conn: Connection, before_ms: int) -> None:
    """Drop the links expired before `before_ms` (used or not: neither can be used)."""
    conn.execute(delete(password_resets).where(password_resets.c.expires_ms <= before_ms))


def forget_idle_sessions(conn: Connection, idle_since_ms: int) -> None:
    conn.execute(
        delete(sessions).where(
            sessions.c.scope == "wallet", sessions.c.last_seen_ms <= idle_since_ms
        )
    )
