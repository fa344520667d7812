"""Every query of the admin pages: members found by name, email or id, a page at a time.
(Members are written by `wallet_api.repository`; this module only reads.)"""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, func, or_, select

from wallet_api.models import members

# What a member is shown with (never the password hash).
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
