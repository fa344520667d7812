"""Shops found by their name: a merchant's public slug (made from the trade name), the place
they trade in, a folded search text, and the association's approval.

A member's id names their ledger account and never changes; a shop is known to the public
by its slug instead. The merchants already trading when this runs are approved (nobody
decided it: `decided_by` stays empty); their place is read from their address where it
names a town after a postcode, else it is the node's village.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import re
import secrets
import time
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATES = "('pending', 'approved', 'suspended')"
# "12 rue Haute, 31000 Toulouse" -> "Toulouse"
POSTCODE_TOWN = re.compile(r"\b\d{5}\s+([^\d,]+?)\s*$")
# Ligatures NFKD leaves whole (members/shops.py folds the same way; repeated here rather
# than imported, as that code may change after this revision).
LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss"})

merchants = sa.table(
    "merchants",
    sa.column("member_id", sa.String),
    sa.column("trade_name", sa.String),
    sa.column("address", sa.Text),
    sa.column("slug", sa.String),
    sa.column("place", sa.String),
    sa.column("search_text", sa.String),
    sa.column("status", sa.String),
    sa.column("decided_ms", sa.BigInteger),
)
members = sa.table("members", sa.column("id", sa.String))


def words(text: str) -> list[str]:
    marks = unicodedata.normalize("NFKD", text.casefold().translate(LIGATURES))
    plain = "".join(c for c in marks if not unicodedata.combining(c))
    return [w for w in re.split(r"[\W_]+", plain) if w]


def place_of(address: str, village: str) -> str:
    found = POSTCODE_TOWN.search(address.strip())
    return (found.group(1).strip() if found else village)[:80]


def village_name() -> str:
    """The node's village as its settings say (SOU_VILLAGE or sou.toml)."""
    from runtime.settings import Settings

    return Settings().village.strip()[:80] or "Val-de-Sou"


def fill(conn: sa.Connection) -> None:
    """Slug, place, search text and approval of the merchants already trading."""
    village, now = village_name(), int(time.time() * 1000)
    ids = {row.id for row in conn.execute(sa.select(members.c.id))}
    rows = conn.execute(
        sa.select(merchants.c.member_id, merchants.c.trade_name, merchants.c.address)
    ).all()
    slugs: set[str] = set()
    for member_id, trade_name, address in sorted(rows):
        stem = "-".join(w for w in words(trade_name) if w.isascii())[:48].strip("-") or "commerce"
        slug = stem
        # Another shop's slug, or another member's id (`/send?to=` takes both): a suffix.
        while slug in slugs or (slug in ids and slug != member_id):
            slug = f"{stem}-{secrets.token_hex(2)}"
        slugs.add(slug)
        place = place_of(address, village)
        conn.execute(
            sa.update(merchants)
            .where(merchants.c.member_id == member_id)
            .values(
                slug=slug,
                place=place,
                search_text=" ".join(words(f"{trade_name} {place}"))[:250],
                status="approved",
                decided_ms=now,
            )
        )


def upgrade() -> None:
    with op.batch_alter_table("merchants") as batch:
        batch.add_column(sa.Column("slug", sa.String(64)))
        batch.add_column(sa.Column("place", sa.String(80)))
        batch.add_column(sa.Column("search_text", sa.String(250)))
        batch.add_column(sa.Column("status", sa.String(12)))
        batch.add_column(sa.Column("decided_by", sa.String(48)))
        batch.add_column(sa.Column("decided_ms", sa.BigInteger))
    fill(op.get_bind())
    # On SQLite the table is rebuilt with its constraints (siret's included).
    with op.batch_alter_table("merchants") as batch:
        for column in ("slug", "place", "search_text", "status"):
            batch.alter_column(column, nullable=False)
        batch.create_unique_constraint(op.f("uq_merchants_slug"), ["slug"])
        batch.create_foreign_key(
            op.f("fk_merchants_decided_by_members"), "members", ["decided_by"], ["id"]
        )
        batch.create_check_constraint("slug", "length(slug) > 0 AND slug = lower(slug)")
        batch.create_check_constraint("place", "length(place) > 0")
        batch.create_check_constraint("status", f"status IN {STATES}")
        batch.create_check_constraint("decided_when", "(status = 'pending') = (decided_ms IS NULL)")


def downgrade() -> None:
    with op.batch_alter_table("merchants") as batch:
        for name in ("decided_when", "status", "place", "slug"):
            batch.drop_constraint(op.f(f"ck_merchants_{name}"), type_="check")
        batch.drop_constraint(op.f("fk_merchants_decided_by_members"), type_="foreignkey")
        batch.drop_constraint(op.f("uq_merchants_slug"), type_="unique")
        for column in ("decided_ms", "decided_by", "status", "search_text", "place", "slug"):
            batch.drop_column(column)
