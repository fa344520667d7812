"""Every query of the members' tables: members, sessions, tokens, device labels, failed
logins, trade details and shops (whom one pays), and the freezes of wallets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    bindparam,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from ledger.models import keys
from members.models import (
    WALLET_ROLES,
    api_tokens,
    devices,
    login_devices,
    login_failures,
    members,
    merchants,
    sessions,
)


def member(conn: Connection, member_id: str) -> RowMapping | None:
    return conn.execute(select(members).where(members.c.id == member_id)).mappings().first()


def member_by_email(conn: Connection, email: str) -> RowMapping | None:
    query = select(members).where(members.c.email == email.lower())
    return conn.execute(query).mappings().first()


def lock_member(conn: Connection, member_id: str) -> None:
    """Hold this member's row until the transaction ends (SQLite: every writer holds all)."""
    conn.execute(select(members.c.id).where(members.c.id == member_id).with_for_update())


def insert_member(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(members).values(**row))


def update_member(conn: Connection, member_id: str, **values: Any) -> None:
    conn.execute(update(members).where(members.c.id == member_id).values(**values))


def members_by_role(conn: Connection, roles: Sequence[str]) -> list[RowMapping]:
    query = select(members).where(members.c.role.in_(roles)).order_by(members.c.display_name)
    return list(conn.execute(query).mappings())


# What a member is shown with in a search (never the password hash).
SHOWN = (
    members.c.id,
    members.c.role,
    members.c.display_name,
    members.c.email,
    members.c.office,
    members.c.locale,
    members.c.membership_until,
    members.c.frozen_reason,
)


def search_members(
    conn: Connection, *, text: str, role: str | None, offset: int, limit: int
) -> tuple[list[RowMapping], int]:
    """A page of the members whose name, email or id contains `text` (any case; on SQLite
    only ASCII letters fold), of one role if given, by name; and how many match in all."""
    query = select(*SHOWN)
    if text:
        needle = text.lower()
        query = query.where(
            or_(
                func.lower(members.c.display_name).contains(needle, autoescape=True),
                members.c.email.contains(needle, autoescape=True),  # stored lowercase
                members.c.id.contains(needle, autoescape=True),
            )
        )
    if role is not None:
        query = query.where(members.c.role == role)
    total = conn.scalar(select(func.count()).select_from(query.subquery()))
    ordered = query.order_by(func.lower(members.c.display_name), members.c.id)
    rows = conn.execute(ordered.offset(offset).limit(limit)).mappings()
    return list(rows), int(total or 0)


def insert_merchant(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(merchants).values(**row))


# -- shops and whom one pays ---------------------------------------------------------------

# A shop with its owner's name.
_SHOP = select(
    merchants.c.member_id,
    merchants.c.slug,
    merchants.c.trade_name,
    merchants.c.category,
    merchants.c.address,
    merchants.c.place,
    merchants.c.status,
    merchants.c.siret,
    members.c.display_name,
).join(members, members.c.id == merchants.c.member_id)


# Read on every sale at the counter: made once, with parameters (a statement built anew costs
# more to make and to look up in SQLAlchemy's cache than the database spends on it).
_SHOP_OF = _SHOP.where(merchants.c.member_id == bindparam("member_id"))


def shop(conn: Connection, member_id: str) -> RowMapping | None:
    return conn.execute(_SHOP_OF, {"member_id": member_id}).mappings().first()


def shop_by_slug(conn: Connection, slug: str) -> RowMapping | None:
    return conn.execute(_SHOP.where(merchants.c.slug == slug)).mappings().first()


def shops_by_status(conn: Connection, status: str) -> list[RowMapping]:
    query = _SHOP.where(merchants.c.status == status).order_by(
        merchants.c.search_text,
        merchants.c.member_id,  # by name, whatever its accents
    )
    return list(conn.execute(query).mappings())


def slug_taken(conn: Connection, slug: str, member_id: str) -> bool:
    """Is `slug` another shop's, or another member's id?"""
    shops = select(merchants.c.member_id).where(merchants.c.slug == slug)
    ids = select(members.c.id).where(members.c.id == slug, members.c.id != member_id)
    return conn.execute(shops.union_all(ids).limit(1)).first() is not None


def set_shop_status(
    conn: Connection, member_id: str, *, status: str, by: str | None, now_ms: int
) -> bool:
    done = conn.execute(
        update(merchants)
        .where(merchants.c.member_id == member_id)
        .values(status=status, decided_by=by, decided_ms=now_ms)
    )
    return done.rowcount == 1


# A member who holds a wallet, with their trade if they sell.
_PAYEE = (
    select(
        members.c.id,
        members.c.display_name,
        merchants.c.trade_name,
        merchants.c.place,
        merchants.c.slug,
        merchants.c.status,
    )
    .outerjoin(merchants, merchants.c.member_id == members.c.id)
    .where(members.c.role.in_(WALLET_ROLES))
)


def payees_exactly(conn: Connection, text: str, *, by_email: bool = True) -> list[RowMapping]:
    """The wallet holders of this exact id (or email), and the approved shop of this exact
    slug."""
    approved_slug = (merchants.c.slug == text) & (merchants.c.status == "approved")
    by_address = (members.c.email == text) if by_email else false()
    query = _PAYEE.where(or_(members.c.id == text, by_address, approved_slug))
    return list(conn.execute(query.order_by(members.c.id)).mappings())


def search_shops(conn: Connection, words: Sequence[str], limit: int) -> list[RowMapping]:
    """Approved shops whose folded trade name and place hold every word, by name."""
    query = _PAYEE.where(merchants.c.status == "approved")
    for word in words:
        query = query.where(merchants.c.search_text.contains(word, autoescape=True))
    # The search text starts with the folded trade name: by name, whatever its accents.
    ordered = query.order_by(merchants.c.search_text, members.c.id).limit(limit)
    return list(conn.execute(ordered).mappings())


_NAMES = (
    select(members.c.id, members.c.display_name, merchants.c.trade_name)
    .outerjoin(merchants, merchants.c.member_id == members.c.id)
    .where(members.c.id.in_(bindparam("member_ids", expanding=True)))
)


def names(conn: Connection, member_ids: Sequence[str]) -> list[RowMapping]:
    """The name and trade name (of those who sell) of these members."""
    return list(conn.execute(_NAMES, {"member_ids": list(member_ids)}).mappings())


# -- frozen wallets -------------------------------------------------------------------------


def freeze(conn: Connection, member_id: str, reason: str) -> None:
    """Freeze a member's wallet, unless it is already frozen (its reason stands)."""
    conn.execute(
        update(members)
        .where(members.c.id == member_id, members.c.frozen_reason.is_(None))
        .values(frozen_reason=reason)
    )


def thaw(conn: Connection, member_id: str, reason: str) -> None:
    """Lift a freeze made for `reason` (never one made for another reason)."""
    conn.execute(
        update(members)
        .where(members.c.id == member_id, members.c.frozen_reason == reason)
        .values(frozen_reason=None)
    )


def unfreeze(conn: Connection, member_id: str) -> None:
    conn.execute(update(members).where(members.c.id == member_id).values(frozen_reason=None))


# -- sessions and tokens -------------------------------------------------------------------


def insert_session(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(sessions).values(**row))


# Asked on every request: built once (building a SELECT costs more than running it).
_SESSION_MEMBER = (
    select(
        members,
        sessions.c.csrf,
        sessions.c.expires_ms,
        sessions.c.scope,
        sessions.c.last_seen_ms,
        sessions.c.user_agent,
    )
    .join(sessions, sessions.c.member_id == members.c.id)
    .where(
        sessions.c.token_hash == bindparam("hash"),
        sessions.c.expires_ms > bindparam("now"),
        # Else unused too long: ended. A counter device's lasts its days (a shop shut for
        # the holidays keeps its till paired).
        or_(sessions.c.scope == "pos", sessions.c.last_seen_ms > bindparam("idle_since")),
    )
)
_TOKEN_MEMBER = (
    select(members, api_tokens.c.scope, api_tokens.c.id.label("token_id"))
    .join(api_tokens, api_tokens.c.member_id == members.c.id)
    .where(api_tokens.c.token_hash == bindparam("hash"), api_tokens.c.revoked_ms.is_(None))
)


def session_member(
    conn: Connection, token_hash: bytes, now_ms: int, idle_since_ms: int
) -> RowMapping | None:
    """The member of a session neither past its end nor (a person's) unused since
    `idle_since_ms`."""
    values = {"hash": token_hash, "now": now_ms, "idle_since": idle_since_ms}
    return conn.execute(_SESSION_MEMBER, values).mappings().first()


def delete_session(conn: Connection, token_hash: bytes) -> None:
    conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))


def delete_expired_sessions(conn: Connection, now_ms: int) -> None:
    conn.execute(delete(sessions).where(sessions.c.expires_ms <= now_ms))


def delete_sessions_of_key(conn: Connection, key_id: str) -> None:
    """End the sessions of the counter device holding this key."""
    conn.execute(delete(sessions).where(sessions.c.key_id == key_id))


def insert_token(conn: Connection, row: dict[str, Any]) -> int:
    key = conn.execute(insert(api_tokens).values(**row)).inserted_primary_key
    assert key is not None
    return int(key[0])


def token_member(conn: Connection, token_hash: bytes) -> RowMapping | None:
    return conn.execute(_TOKEN_MEMBER, {"hash": token_hash}).mappings().first()


def tokens_of(conn: Connection, member_id: str) -> list[RowMapping]:
    query = (
        select(api_tokens.c.id, api_tokens.c.scope, api_tokens.c.label, api_tokens.c.created_ms)
        .where(api_tokens.c.member_id == member_id, api_tokens.c.revoked_ms.is_(None))
        .order_by(api_tokens.c.id)
    )
    return list(conn.execute(query).mappings())


def revoke_token(conn: Connection, member_id: str, token_id: int, now_ms: int) -> bool:
    done = conn.execute(
        update(api_tokens)
        .where(
            api_tokens.c.id == token_id,
            api_tokens.c.member_id == member_id,
            api_tokens.c.revoked_ms.is_(None),
        )
        .values(revoked_ms=now_ms)
    )
    return done.rowcount == 1


# -- failed logins -------------------------------------------------------------------------


@dataclass(frozen=True)
class Failures:
    count: int
    window_start_ms: int
    blocked_until_ms: int


def lock_failures(conn: Connection, subjects: Sequence[str], now_ms: int) -> dict[str, Failures]:
    """The failed logins of these subjects, locked until the transaction ends (on SQLite,
    every writing transaction holds the database). Rows are made where missing, at zero;
    lock them in one order (sorted) so that two tries never wait for each other."""
    table = login_failures
    fresh = [{"subject": s, "count": 0, "window_start_ms": now_ms} for s in subjects]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(index_elements=["subject"]), fresh)
    rows = conn.execute(
        select(table)
        .where(table.c.subject.in_(subjects))
        .order_by(table.c.subject)
        .with_for_update()
    ).mappings()
    return {
        row["subject"]: Failures(row["count"], row["window_start_ms"], row["blocked_until_ms"])
        for row in rows
    }


def set_failures(
    conn: Connection, subject: str, count: int, window_start_ms: int, blocked_until_ms: int
) -> None:
    conn.execute(
        update(login_failures)
        .where(login_failures.c.subject == subject)
        .values(count=count, window_start_ms=window_start_ms, blocked_until_ms=blocked_until_ms)
    )


def take_back_failure(conn: Connection, subject: str) -> None:
    conn.execute(
        update(login_failures)
        .where(login_failures.c.subject == subject, login_failures.c.count > 0)
        .values(count=login_failures.c.count - 1)
    )


def clear_failures(conn: Connection, subject: str) -> None:
    conn.execute(delete(login_failures).where(login_failures.c.subject == subject))


def forget_failures(conn: Connection, before_ms: int) -> None:
    """Failures whose window and wait are both over count for nothing: drop them."""
    table = login_failures
    conn.execute(
        delete(table).where(
            table.c.window_start_ms < before_ms, table.c.blocked_until_ms < before_ms
        )
    )


# -- the devices members logged in from ----------------------------------------------------


def login_device_known(conn: Connection, token_hash: bytes, member_id: str) -> bool:
    table = login_devices
    found = conn.scalar(select(table.c.member_id).where(table.c.token_hash == token_hash))
    return found == member_id


def touch_login_device(conn: Connection, token_hash: bytes, now_ms: int) -> None:
    conn.execute(
        update(login_devices).where(login_devices.c.token_hash == token_hash).values(last_ms=now_ms)
    )


def add_login_device(
    conn: Connection, token_hash: bytes, member_id: str, now_ms: int, kept: int
) -> None:
    """Know one more device of this member, forgetting the least recently used beyond `kept`."""
    table = login_devices
    conn.execute(
        insert(table).values(
            token_hash=token_hash, member_id=member_id, created_ms=now_ms, last_ms=now_ms
        )
    )
    stale = (
        select(table.c.token_hash)
        .where(table.c.member_id == member_id)
        .order_by(table.c.last_ms.desc())
        .offset(kept)
    )
    conn.execute(delete(table).where(table.c.token_hash.in_(stale)))


def forget_login_devices_of(conn: Connection, member_id: str) -> None:
    conn.execute(delete(login_devices).where(login_devices.c.member_id == member_id))


def forget_login_devices(conn: Connection, unused_since_ms: int) -> None:
    conn.execute(delete(login_devices).where(login_devices.c.last_ms < unused_since_ms))


# -- devices -------------------------------------------------------------------------------


def insert_device(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(devices).values(**row))


def devices_of(conn: Connection, member_id: str) -> list[RowMapping]:
    query = (
        select(
            keys.c.key_id,
            keys.c.registered_ms,
            keys.c.revoked_ms,
            func.coalesce(devices.c.label, "").label("label"),
        )
        .outerjoin(devices, devices.c.key_id == keys.c.key_id)
        .where(keys.c.owner == f"member:{member_id}")
        .order_by(keys.c.registered_ms, keys.c.key_id)
    )
    return list(conn.execute(query).mappings())
