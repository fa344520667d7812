"""Every query of the reconciliation: its own tables, and the ledger's euro movements read
(never written) from the ledger's tables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.engine import RowMapping

from audits.reconciliation.models import lines, matches, statements
from ledger.models import accounts, postings, transfers
from ledger.operations import read_deposit_memo

BANK_ACCOUNTS = ("reserve:digital", "reserve:paper")
STRIPE_ACCOUNT = "clearing:stripe"
ACCOUNTS = (*BANK_ACCOUNTS, STRIPE_ACCOUNT)
# Where reconversions are paid from: the redemption earmarks the euros in the reserve
# (`payouts:pending`), the payout is when they leave the bank.
PAYOUT_ACCOUNT = "reserve:digital"
# A reconversion's payout: its client id names the request (merchants' `mark_paid`), and
# the transfer file names the request `SOU-RECONVERSION-<id>` (its EndToEndId).
PAYOUT_CLIENT_ID = re.compile(r"^reconversion-(?P<id>[0-9]{1,16})-payout$")


@dataclass(frozen=True)
class Movement:
    """A transfer's euros on one account: + into it, - out of it."""

    transfer_id: int
    account: str
    kind: str
    amount: int
    created_ms: int
    references: frozenset[str]
    slip: str | None = None  # a cash deposit's paying-in slip
    office: str | None = None  # the office that made a cash deposit
    reconversion: int | None = None  # the request a payout paid
    # A payout's bank reference: every payout of one transfer file carries the file's.
    bank_ref: str | None = None
    # The reference the treasurer typed marking it found on the statement by hand elsewhere
    # (an office's deposit, on the offices' page): that feature's record, read by its hook.
    reconciled_by_hand: str | None = None


# A reference shorter than this would be found by chance in many a statement line's words.
MIN_REFERENCE = 4


def usable(reference: str) -> bool:
    """Whether a movement can be matched by this reference: long enough to mean something."""
    return len(reference) >= MIN_REFERENCE


def _new_id(conn: Connection, statement: Any) -> int:
    key = conn.execute(statement).inserted_primary_key
    assert key is not None  # an insert of one row
    return int(key[0])


def insert_statement(conn: Connection, **values: Any) -> int:
    return _new_id(conn, insert(statements).values(**values))


def set_added(conn: Connection, statement_id: int, added: int) -> None:
    conn.execute(
        update(statements).where(statements.c.id == statement_id).values(lines_added=added)
    )


def known_keys(conn: Connection, account: str, keys: Iterable[str]) -> set[str]:
    wanted = list(keys)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        query = select(lines.c.line_key).where(
            lines.c.account == account, lines.c.line_key.in_(wanted[start : start + 500])
        )
        found.update(conn.execute(query).scalars())
    return found


def insert_line(conn: Connection, **values: Any) -> int:
    return _new_id(conn, insert(lines).values(**values))


def line(conn: Connection, line_id: int) -> RowMapping | None:
    return conn.execute(select(lines).where(lines.c.id == line_id)).mappings().first()


def lines_of(conn: Connection, account: str) -> list[RowMapping]:
    query = select(lines).where(lines.c.account == account).order_by(lines.c.booked, lines.c.id)
    return list(conn.execute(query).mappings())


def live_matches(conn: Connection, account: str) -> list[RowMapping]:
    query = select(matches).where(matches.c.account == account, matches.c.undone_ms.is_(None))
    return list(conn.execute(query.order_by(matches.c.id)).mappings())


def undone_pairs(conn: Connection, account: str) -> set[tuple[int, int]]:
    query = select(matches.c.line_id, matches.c.transfer_id).where(
        matches.c.account == account, matches.c.undone_ms.is_not(None)
    )
    return {(int(r[0]), int(r[1])) for r in conn.execute(query)}


def match(conn: Connection, match_id: int) -> RowMapping | None:
    return conn.execute(select(matches).where(matches.c.id == match_id)).mappings().first()


def live_match_of_line(conn: Connection, line_id: int) -> RowMapping | None:
    query = select(matches).where(matches.c.line_id == line_id, matches.c.undone_ms.is_(None))
    return conn.execute(query).mappings().first()


def live_match_of_movement(conn: Connection, transfer_id: int, account: str) -> RowMapping | None:
    query = select(matches).where(
        matches.c.transfer_id == transfer_id,
        matches.c.account == account,
        matches.c.undone_ms.is_(None),
    )
    return conn.execute(query).mappings().first()


def live_matches_of(conn: Connection, transfer_ids: Sequence[int]) -> list[RowMapping]:
    """The live matches of these transfers, each with its line's day and bank reference."""
    found: list[RowMapping] = []
    wanted = list(transfer_ids)
    for start in range(0, len(wanted), 500):
        query = (
            select(matches, lines.c.booked, lines.c.reference)
            .join(lines, lines.c.id == matches.c.line_id)
            .where(
                matches.c.transfer_id.in_(wanted[start : start + 500]),
                matches.c.undone_ms.is_(None),
            )
            .order_by(matches.c.id)
        )
        found += conn.execute(query).mappings()
    return found


def insert_match(conn: Connection, **values: Any) -> int:
    return _new_id(conn, insert(matches).values(**values))


def undo_match(conn: Connection, match_id: int, by: str, at_ms: int) -> bool:
    done = conn.execute(
        update(matches)
        .where(matches.c.id == match_id, matches.c.undone_ms.is_(None))
        .values(undone_by=by, undone_ms=at_ms)
    )
    return bool(done.rowcount)


def undo_line(conn: Connection, line_id: int, by: str, at_ms: int) -> int:
    """Undo every live match of a line: the rest of a batch one of whose matches was undone."""
    done = conn.execute(
        update(matches)
        .where(matches.c.line_id == line_id, matches.c.undone_ms.is_(None))
        .values(undone_by=by, undone_ms=at_ms)
    )
    return int(done.rowcount)


def statements_of(conn: Connection, account: str, limit: int = 20) -> list[RowMapping]:
    query = (
        select(statements)
        .where(statements.c.account == account)
        .order_by(statements.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query).mappings())


# -- the ledger's euro movements ------------------------------------------------------------


def movements(conn: Connection, account: str, since_ms: int, until_ms: int) -> list[Movement]:
    """The transfers that moved euros on `account` between the two moments."""
    rows: list[Any] = list(conn.execute(_postings_on(account, since_ms, until_ms)).mappings())
    if account == PAYOUT_ACCOUNT:
        # A payout's euros leave the bank: its external:eur leg, seen from the reserve.
        payouts = _postings_on("external:eur", since_ms, until_ms, kind="payout")
        rows += [{**r, "amount": -r["amount"]} for r in conn.execute(payouts).mappings()]
    originals = _orders(conn, {int(r["ref_id"]) for r in rows if r["ref_id"] is not None})
    found = []
    for row in rows:
        settles = originals.get(row["ref_id"], ("", {}))[0] == "redemption"
        if row["kind"] == "redemption" or (settles and row["kind"] != "payout"):
            # The euros stay in the bank until the payout (a rejection gives them back to
            # the reserve: they never left it); the payout is when they leave.
            continue
        found.append(_movement(row, account, originals))
    return sorted(found, key=lambda m: (m.created_ms, m.transfer_id))


def movement(conn: Connection, account: str, transfer_id: int) -> Movement | None:
    """One transfer's euros on `account`, if it moved any there."""
    query = select(transfers.c.created_ms).where(transfers.c.id == transfer_id)
    created = conn.execute(query).scalar()
    if created is None:
        return None
    found = movements(conn, account, int(created), int(created))
    return next((m for m in found if m.transfer_id == transfer_id), None)


def _postings_on(account: str, since_ms: int, until_ms: int, kind: str | None = None) -> Any:
    t = transfers.c
    query = (
        select(t.id, t.kind, t.order_json, t.created_ms, t.ref_id, postings.c.amount)
        .select_from(
            postings.join(accounts, accounts.c.id == postings.c.account_id).join(
                transfers, t.id == postings.c.transfer_id
            )
        )
        .where(and_(accounts.c.code == account, t.created_ms.between(since_ms, until_ms)))
    )
    return query.where(t.kind == kind) if kind else query


def _orders(
    conn: Connection, ids: Sequence[int] | set[int]
) -> dict[Any, tuple[str, dict[str, Any]]]:
    if not ids:
        return {}
    query = select(transfers.c.id, transfers.c.kind, transfers.c.order_json).where(
        transfers.c.id.in_(list(ids))
    )
    return {r.id: (r.kind, json.loads(r.order_json)) for r in conn.execute(query)}


def _movement(
    row: RowMapping | dict[str, Any], account: str, originals: dict[Any, tuple[str, dict[str, Any]]]
) -> Movement:
    order = json.loads(row["order_json"])
    refs = {f"SOU-{row['id']}"}
    if order.get("id"):
        refs.add(str(order["id"]))  # the client id the order was sent with
    refs |= {str(order[name]) for name in ("ext", "bank_ref") if order.get(name)}
    if row["ref_id"] is not None:
        refs.add(f"SOU-{row['ref_id']}")  # a payout names its reconversion
        original = originals.get(row["ref_id"], ("", {}))[1]
        if original.get("ext"):
            refs.add(str(original["ext"]))  # a card refund names its top-up's payment
    slip = office = reconversion = bank_ref = None
    if row["kind"] == "cash_deposit":
        slip = (read_deposit_memo(order.get("memo")) or (None, None))[0]
        office = str(order.get("office") or "") or None
        if slip:
            refs.add(slip)
    elif row["kind"] == "payout":
        paid = PAYOUT_CLIENT_ID.match(str(order.get("id") or ""))  # the order's client id
        reconversion = int(paid["id"]) if paid else None
        bank_ref = str(order.get("bank_ref") or "") or None
        if reconversion is not None:
            refs.add(f"SOU-RECONVERSION-{reconversion}")
    return Movement(
        transfer_id=int(row["id"]),
        account=account,
        kind=str(row["kind"]),
        amount=int(row["amount"]),
        created_ms=int(row["created_ms"]),
        references=frozenset(filter(usable, refs)),
        slip=slip,
        office=office,
        reconversion=reconversion,
        bank_ref=bank_ref,
    )
