"""Every query of the crowdfunding plugin, on its own tables only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection, Table, cast, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from plugins.crowdfunding.models import campaigns, movements, payments, tiers, updates

# The campaign without its picture's bytes (read only to serve it).
SHOWN = [c for c in campaigns.c if c.name != "picture"]


def _insert_or_skip(conn: Connection, table: Table, row: dict[str, Any]) -> bool:
    """Insert `row` keyed by its transfer id, leaving one another process made first."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["transfer_id"])
    return bool(conn.execute(statement, row).rowcount)


def insert_campaign(conn: Connection, row: dict[str, Any]) -> int:
    return int(conn.execute(campaigns.insert().returning(campaigns.c.id), row).scalar_one())


def insert_tiers(conn: Connection, campaign_id: int, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        conn.execute(tiers.insert(), {**row, "campaign": campaign_id})


def campaign(conn: Connection, campaign_id: int) -> dict[str, Any] | None:
    row = (
        conn.execute(
            select(*SHOWN, campaigns.c.picture.is_not(None).label("has_picture")).where(
                campaigns.c.id == campaign_id
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def campaigns_in(conn: Connection, states: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(*SHOWN, campaigns.c.picture.is_not(None).label("has_picture"))
        .where(campaigns.c.state.in_(states))
        .order_by(campaigns.c.id.desc())
    ).mappings()
    return [dict(r) for r in rows]


def due(conn: Connection, now_ms: int) -> list[int]:
    """Open campaigns whose deadline has come."""
    found = conn.execute(
        select(campaigns.c.id).where(campaigns.c.state == "open", campaigns.c.deadline_ms <= now_ms)
    )
    return [int(i) for i in found.scalars()]


def change_state(conn: Connection, campaign_id: int, was: str, **values: Any) -> bool:
    """Move a campaign out of state `was`: true for the one caller that did it."""
    done = conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.state == was)
        .values(**values)
    )
    return done.rowcount == 1


def picture(conn: Connection, campaign_id: int) -> bytes | None:
    found = conn.scalar(select(campaigns.c.picture).where(campaigns.c.id == campaign_id))
    return bytes(found) if found is not None else None


def set_picture(conn: Connection, campaign_id: int, data: bytes) -> None:
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(picture=data))


def tiers_of(conn: Connection, campaign_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(tiers).where(tiers.c.campaign == campaign_id).order_by(tiers.c.minimum)
    ).mappings()
    return [dict(r) for r in rows]


def add_update(conn: Connection, campaign_id: int, text: str, now_ms: int) -> int:
    row = {"campaign": campaign_id, "text": text, "created_ms": now_ms}
    return int(conn.execute(updates.insert().returning(updates.c.id), row).scalar_one())


def updates_of(conn: Connection, campaign_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(updates).where(updates.c.campaign == campaign_id).order_by(updates.c.id.desc())
    ).mappings()
    return [dict(r) for r in rows]


def record_payment(conn: Connection, row: dict[str, Any]) -> bool:
    return _insert_or_skip(conn, payments, row)


def record_movement(conn: Connection, row: dict[str, Any]) -> bool:
    return _insert_or_skip(conn, movements, row)


def held(conn: Connection, escrow: str) -> list[dict[str, Any]]:
    """The escrow's payments, oldest first, each with what is left of it (`left`)."""
    out = (
        select(movements.c.ref, cast(func.sum(movements.c.amount), BigInteger).label("out"))
        .group_by(movements.c.ref)
        .subquery()
    )
    rows = conn.execute(
        select(
            payments,
            cast(payments.c.amount - func.coalesce(out.c.out, 0), BigInteger).label("left"),
        )
        .outerjoin(out, out.c.ref == payments.c.transfer_id)
        .where(payments.c.escrow == escrow)
        .order_by(payments.c.transfer_id)
    ).mappings()
    return [dict(r) for r in rows]


def mark_counted(conn: Connection, transfer_ids: list[int]) -> None:
    if transfer_ids:
        conn.execute(
            update(payments).where(payments.c.transfer_id.in_(transfer_ids)).values(counted=1)
        )


def movements_of(conn: Connection, escrow: str, campaign_id: int | None) -> list[dict[str, Any]]:
    """Refunds and releases out of `escrow` (and, for a campaign, its matching releases)."""
    where = movements.c.escrow == escrow
    if campaign_id is not None:
        where = where | (movements.c.campaign == campaign_id)
    rows = conn.execute(select(movements).where(where).order_by(movements.c.transfer_id))
    return [dict(r) for r in rows.mappings()]


def matched(conn: Connection, campaign_id: int, matching_escrow: str) -> int:
    """What the matching fund already released for the campaign."""
    return int(
        conn.scalar(
            select(func.coalesce(func.sum(movements.c.amount), 0)).where(
                movements.c.campaign == campaign_id, movements.c.escrow == matching_escrow
            )
        )
        or 0
    )


def closed_with_units_left(conn: Connection) -> list[int]:
    """Closed campaigns that still hold a payment not wholly given out."""
    out = (
        select(movements.c.ref, cast(func.sum(movements.c.amount), BigInteger).label("out"))
        .group_by(movements.c.ref)
        .subquery()
    )
    found = conn.execute(
        select(payments.c.campaign)
        .distinct()
        .join(campaigns, campaigns.c.id == payments.c.campaign)
        .outerjoin(out, out.c.ref == payments.c.transfer_id)
        .where(
            campaigns.c.state.in_(("funded", "missed")),
            payments.c.amount > func.coalesce(out.c.out, 0),
        )
    )
    return [int(i) for i in found.scalars()]


def titles(conn: Connection, campaign_ids: list[int]) -> dict[int, str]:
    """The title of each of these campaigns (unknown ones left out)."""
    if not campaign_ids:
        return {}
    query = select(campaigns.c.id, campaigns.c.title).where(campaigns.c.id.in_(campaign_ids))
    return {int(campaign): str(title) for campaign, title in conn.execute(query)}


def escrow_holdings(conn: Connection) -> dict[str, int]:
    """What each escrow holds by these records: payments in, less refunds and releases."""
    held: dict[str, int] = {}
    for escrow, amount in conn.execute(
        select(payments.c.escrow, func.sum(payments.c.amount)).group_by(payments.c.escrow)
    ):
        held[escrow] = held.get(escrow, 0) + int(amount)
    for escrow, amount in conn.execute(
        select(movements.c.escrow, func.sum(movements.c.amount)).group_by(movements.c.escrow)
    ):
        held[escrow] = held.get(escrow, 0) - int(amount)
    return held
