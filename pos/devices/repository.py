"""Every query of the counter devices' table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from pos.devices.models import counter_devices


def insert_device(conn: Connection, row: dict[str, Any]) -> int:
    key = conn.execute(insert(counter_devices).values(**row)).inserted_primary_key
    assert key is not None
    return int(key[0])


def device(conn: Connection, device_id: int) -> RowMapping | None:
    query = select(counter_devices).where(counter_devices.c.id == device_id)
    return conn.execute(query).mappings().first()


def by_code(conn: Connection, code_hash: bytes) -> RowMapping | None:
    query = select(counter_devices).where(counter_devices.c.code_hash == code_hash)
    return conn.execute(query).mappings().first()


def devices_of(conn: Connection, member_id: str, now_ms: int) -> list[RowMapping]:
    """The shop's devices not removed: paired, or whose code may still be used; oldest
    first."""
    query = (
        select(counter_devices)
        .where(
            counter_devices.c.member_id == member_id,
            counter_devices.c.removed_ms.is_(None),
            (counter_devices.c.used_ms.is_not(None)) | (counter_devices.c.code_expires_ms > now_ms),
        )
        .order_by(counter_devices.c.created_ms, counter_devices.c.id)
    )
    return list(conn.execute(query).mappings())


def count_live(conn: Connection, member_id: str, now_ms: int) -> int:
    query = select(func.count()).select_from(
        select(counter_devices.c.id)
        .where(
            counter_devices.c.member_id == member_id,
            counter_devices.c.removed_ms.is_(None),
            (counter_devices.c.used_ms.is_not(None)) | (counter_devices.c.code_expires_ms > now_ms),
        )
        .subquery()
    )
    return int(conn.scalar(query) or 0)


def claim(conn: Connection, device_id: int, key_id: str, now_ms: int) -> bool:
    """Use the device's code for `key_id`, if it is still unused, unexpired and not
    withdrawn: the one UPDATE that decides which device pairs, whatever races."""
    done = conn.execute(
        update(counter_devices)
        .where(
            counter_devices.c.id == device_id,
            counter_devices.c.used_ms.is_(None),
            counter_devices.c.removed_ms.is_(None),
            counter_devices.c.code_expires_ms > now_ms,
        )
        .values(used_ms=now_ms, key_id=key_id)
    )
    return done.rowcount == 1


def release(conn: Connection, device_id: int, key_id: str) -> None:
    """Give the code back after its key could not be registered (nothing was paired)."""
    conn.execute(
        update(counter_devices)
        .where(
            counter_devices.c.id == device_id,
            counter_devices.c.key_id == key_id,
            counter_devices.c.paired_ms.is_(None),
        )
        .values(used_ms=None, key_id=None)
    )


def mark_paired(conn: Connection, device_id: int, now_ms: int) -> None:
    conn.execute(
        update(counter_devices)
        .where(counter_devices.c.id == device_id, counter_devices.c.paired_ms.is_(None))
        .values(paired_ms=now_ms)
    )


def mark_removed(conn: Connection, device_id: int, now_ms: int) -> None:
    conn.execute(
        update(counter_devices)
        .where(counter_devices.c.id == device_id, counter_devices.c.removed_ms.is_(None))
        .values(removed_ms=now_ms)
    )
