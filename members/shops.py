"""Shops and whom one pays: a merchant's trade as the public knows it (a slug made from the
trade name, the place it trades in, the association's approval), the search for a payee,
and the names that histories and receipts show instead of account codes.

A member's id names their ledger account (`member:<id>`) and never changes; a shop's slug
is what its page and links use. Only approved shops are listed and found by their words;
residents, for their privacy, and merchants not approved are found only by their exact
member id or email.

Every function takes a connection, so that a feature reads shops inside its own
transaction (the POS checking that the merchant is approved, say); the queries are in
`members/repository.py`.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, RowMapping

from ledger.chart import member_account
from members import repository as repo

# What a search needs at the least and reads at the most (the API's `q`).
MIN_QUERY, MAX_QUERY = 2, 80
MAX_SLUG_STEM = 48  # and "-" with 4 hex digits on a collision: within the column's 64
# Ligatures that Unicode decomposition leaves whole.
LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss"})


@dataclass(frozen=True)
class Shop:
    """A merchant's trade: `display_name` is the owner's name, `trade_name` the shop's."""

    member_id: str
    slug: str
    trade_name: str
    category: str
    address: str
    place: str
    status: str  # pending, approved or suspended
    display_name: str
    siret: str | None = None

    @property
    def account(self) -> str:
        return member_account(self.member_id)

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @classmethod
    def from_row(cls, row: RowMapping) -> Shop:
        return cls(
            row["member_id"],
            row["slug"],
            row["trade_name"],
            row["category"],
            row["address"],
            row["place"],
            row["status"],
            row["display_name"],
            row["siret"],
        )


@dataclass(frozen=True)
class Payee:
    """Someone a wallet may pay, as the payer is shown them before signing."""

    account: str
    member_id: str
    name: str  # a shop's trade name, a resident's name
    kind: Literal["shop", "resident"]
    place: str | None  # a shop's
    slug: str | None  # an approved shop's, for its page


# -- words and slugs -----------------------------------------------------------------------


def words(text: str) -> list[str]:
    """The words of a text as searches compare them: lowercase, without accents."""
    marks = unicodedata.normalize("NFKD", text.casefold().translate(LIGATURES))
    plain = "".join(c for c in marks if not unicodedata.combining(c))
    return [w for w in re.split(r"[\W_]+", plain) if w]


def search_text(trade_name: str, place: str) -> str:
    """What a shop is found by: its trade name and place, folded."""
    return " ".join(words(f"{trade_name} {place}"))[:250]


def slug_for(conn: Connection, trade_name: str, member_id: str) -> str:
    """A public id from the trade name ("Épicerie Chez Zoé" -> "epicerie-chez-zoe"), with a
    short suffix only when another shop has it or another member has it as their id (a
    link `/send?to=` takes either)."""
    ascii_words = (w for w in words(trade_name) if w.isascii())
    stem = "-".join(ascii_words)[:MAX_SLUG_STEM].strip("-") or "commerce"
    slug = stem
    while repo.slug_taken(conn, slug, member_id):
        slug = f"{stem}-{secrets.token_hex(2)}"
    return slug


# -- shops ---------------------------------------------------------------------------------


def add_shop(
    conn: Connection,
    member_id: str,
    *,
    trade_name: str,
    category: str,
    address: str,
    place: str,
    siret: str | None = None,
) -> Shop:
    """Record a merchant's trade, pending the association's approval."""
    repo.insert_merchant(
        conn,
        {
            "member_id": member_id,
            "trade_name": trade_name,
            "category": category,
            "address": address,
            "siret": siret,
            "place": place,
            "slug": slug_for(conn, trade_name, member_id),
            "search_text": search_text(trade_name, place),
            "status": "pending",
        },
    )
    found = shop_of(conn, member_id)
    assert found is not None
    return found


def shop_of(conn: Connection, member_id: str) -> Shop | None:
    """The member's shop, whatever its state; None for a member who sells nothing."""
    row = repo.shop(conn, member_id)
    return None if row is None else Shop.from_row(row)


def shop_by_slug(conn: Connection, slug: str) -> Shop | None:
    """The shop of this slug, whatever its state (its page shows approved ones only)."""
    row = repo.shop_by_slug(conn, slug)
    return None if row is None else Shop.from_row(row)


def shops_in(conn: Connection, status: str) -> list[Shop]:
    """The shops in one state, by trade name."""
    return [Shop.from_row(row) for row in repo.shops_by_status(conn, status)]


def decide(conn: Connection, member_id: str, status: str, by: str | None, now_ms: int) -> bool:
    """Approve or suspend a shop (`status`), as `by` decided; False if it is no shop."""
    return repo.set_shop_status(conn, member_id, status=status, by=by, now_ms=now_ms)


# -- whom one pays -------------------------------------------------------------------------


def find_payees(conn: Connection, text: str, limit: int = 10) -> list[Payee]:
    """Whom `text` names: the member of this exact id or email, the shop of this exact
    slug, then the approved shops whose trade name or place holds every word typed (any
    case, any accent), by name. Operators hold no wallet and are never found."""
    text = " ".join(text.split())
    if not MIN_QUERY <= len(text) <= MAX_QUERY:
        return []
    exact = text.lower().removeprefix("member:")
    found = {row["id"]: _payee(row) for row in repo.payees_exactly(conn, exact)}
    typed = words(text)
    if typed and len(found) < limit:
        for row in repo.search_shops(conn, typed, limit):
            found.setdefault(row["id"], _payee(row))
    return list(found.values())[:limit]


def payee(conn: Connection, reference: str) -> Payee | None:
    """The payee a link names (`/send?to=`): an approved shop's slug, or a member's id
    (`member:<id>` names the id only)."""
    reference = reference.strip().lower()
    member_id = reference.removeprefix("member:")
    rows = repo.payees_exactly(conn, member_id, by_email=False)
    by_id = [r for r in rows if r["id"] == member_id]
    by_slug = [r for r in rows if r["slug"] == reference and r["status"] == "approved"]
    chosen = by_id if reference.startswith("member:") else by_slug or by_id
    return _payee(chosen[0]) if chosen else None


def _payee(row: RowMapping) -> Payee:
    account, member_id = member_account(row["id"]), row["id"]
    if row["trade_name"] is None:
        return Payee(account, member_id, row["display_name"], "resident", None, None)
    slug = row["slug"] if row["status"] == "approved" else None
    return Payee(account, member_id, row["trade_name"], "shop", row["place"], slug)


def names_of(conn: Connection, member_ids: Iterable[str]) -> dict[str, str]:
    """How histories and receipts name members: a shop's trade name, anyone else's name.
    Ids of no member are left out."""
    wanted = sorted(set(member_ids))
    if not wanted:
        return {}
    return {row["id"]: row["trade_name"] or row["display_name"] for row in repo.names(conn, wanted)}
