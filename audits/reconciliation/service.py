"""The reconciliation's rules: import a statement once, match its lines to the ledger's euro
movements (by reference first, then by amount and date), let the treasurer match by hand
and undo, and say what is left unmatched on each side.

A match needs the exact amount: a line one cent off is shown as a near miss, with the
difference, never matched automatically. A line printed twice in one statement (the same
bank reference) is kept but never matched automatically: the first is, the other is listed.

A bank may book a whole transfer file on one line (a batch), or two files sent the same day.
Such a line is matched to all the payouts of the files at once, or to none: the open payouts
sharing the files' bank references, when their sum is the line's amount to the cent and the
line names each file (its bank reference, or its payouts' end-to-end ids) or, naming no
payout, it books one file, each payout of it within the window. The treasurer may match a
line to several movements by hand, when they add up to it.

A match is the reconciliation's own record, which the other features read through the
`sou_bank_confirmations` hook (an office's deposit shows as reconciled on the offices' page
while its match stands); what they recorded by hand reaches the matching the same way (the
bank reference the treasurer typed for a deposit is one of its references).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from audits.reconciliation import bank_csv, camt, errors, repository, stripe_balance
from audits.reconciliation.parsed import MAX_BYTES, ParsedLine, Statement
from audits.reconciliation.repository import ACCOUNTS, BANK_ACCOUNTS, STRIPE_ACCOUNT, Movement
from runtime.hookspecs import BankConfirmation
from web.refusals import Money

if TYPE_CHECKING:
    import stripe

    from runtime.node import Node
    from runtime.plugins import Plugins

FORMATS = ("camt", "csv", "stripe-csv")
WINDOW_DAYS = 3  # a bank books a transfer a few days after the ledger records it
NEAR_CENTS = 100  # a line this close to a movement (but not equal) is shown as a near miss
DAY_MS = 86_400_000
MAX_PARTS = 500  # movements matched by hand to one line: far more than a transfer file holds
_WORDS = re.compile(r"[\s/;,()\[\]]+")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Line:
    id: int
    account: str
    booked: str
    amount: int
    reference: str | None
    end_to_end: str | None
    label: str
    duplicate: bool  # the same bank reference seen earlier in the same file


@dataclass(frozen=True)
class Match:
    id: int
    line: Line
    movement: Movement
    how: str
    note: str | None
    part: int = 0  # the movement's place among those booked on the line
    parts: int = 1  # how many movements the line books: more than one for a batch


@dataclass(frozen=True)
class MatchedLine:
    """A statement line and its matches: one, or every movement of a batch booked on it."""

    line: Line
    matches: list[Match]

    @property
    def batch(self) -> bool:
        return len(self.matches) > 1


@dataclass(frozen=True)
class NearMiss:
    line: Line
    movement: Movement
    difference: int  # line - movement, cents


@dataclass
class AccountView:
    account: str
    matched: list[Match] = field(default_factory=list)
    unmatched_lines: list[Line] = field(default_factory=list)
    unmatched_movements: list[Movement] = field(default_factory=list)
    near_misses: list[NearMiss] = field(default_factory=list)

    @property
    def matched_lines(self) -> list[MatchedLine]:
        """The matches by line: a batch's line once, with its movements."""
        found: dict[int, MatchedLine] = {}
        for m in self.matched:
            found.setdefault(m.line.id, MatchedLine(m.line, [])).matches.append(m)
        return list(found.values())

    @property
    def matched_total(self) -> int:
        return sum(m.line.amount for m in self.matched_lines)  # a batch's line counted once

    @property
    def unmatched_lines_total(self) -> int:
        return sum(line.amount for line in self.unmatched_lines)

    @property
    def unmatched_movements_total(self) -> int:
        return sum(m.amount for m in self.unmatched_movements)

    @property
    def all_matched(self) -> bool:
        return not self.unmatched_lines and not self.unmatched_movements


@dataclass(frozen=True)
class Imported:
    statement_id: int
    account: str
    read: int
    added: int
    matched: int  # matches the import made (on its lines and earlier ones)
    view: AccountView


# -- reading ----------------------------------------------------------------------------------


def parse(data: bytes, fmt: str, name: str = "") -> Statement:
    """The statement a file holds; a Refusal (4xx) when it is not one."""
    if not data.strip():
        raise errors.EMPTY_STATEMENT()
    if len(data) > MAX_BYTES:
        raise errors.STATEMENT_TOO_LARGE(maximum=MAX_BYTES)
    if fmt == "camt":
        return camt.parse(data, name)
    if fmt == "csv":
        return bank_csv.parse(data, name)
    if fmt == "stripe-csv":
        return stripe_balance.parse_csv(data, name)
    raise errors.UNKNOWN_FORMAT()


def guess_format(name: str, data: bytes) -> str:
    """The format of an uploaded file, from its first bytes."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<"):
        return "camt"
    first = head.split(b"\n", 1)[0]
    if b"," in first and b";" not in first and (b"id" in first or b"balance" in first):
        return "stripe-csv"
    return "csv"


def account_for(node: Node, fmt: str, statement: Statement, account: str | None) -> str:
    if account:
        if account not in ACCOUNTS:
            raise errors.BAD_ACCOUNT()
        return account
    if fmt.startswith("stripe"):
        return STRIPE_ACCOUNT
    paper = _paper_iban(node)
    if paper and statement.account_id and _iban(statement.account_id) == paper:
        return "reserve:paper"
    return "reserve:digital"


def _iban(text: str) -> str:
    return "".join(text.split()).upper()


def _paper_iban(node: Node) -> str:
    try:
        settings = node.plugin_settings("reconciliation")
    except Exception:  # not loaded through the hooks (a bare test node)
        return ""
    return _iban(getattr(settings, "paper_iban", "") or "")


# -- importing --------------------------------------------------------------------------------


def import_statement(
    node: Node,
    data: bytes,
    fmt: str,
    *,
    name: str = "",
    account: str | None = None,
    by: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Imported:
    """Store a statement's new lines and match what can be; a statement already imported
    adds nothing and matches nothing twice."""
    statement = parse(data, fmt, name)
    target = account_for(node, fmt, statement, account)
    wanted = (STRIPE_ACCOUNT,) if fmt == "stripe-csv" else BANK_ACCOUNTS
    if target not in wanted:  # a bank's file on Stripe's account, or the other way round
        raise errors.BAD_ACCOUNT()
    return store(node, statement, fmt, target, by=by, progress=progress)


def import_stripe(
    node: Node, *, by: str | None = None, progress: Callable[[int, int], None] | None = None
) -> Imported:
    """Read Stripe's balance transactions through the API and import them."""
    settings = node.settings
    if not settings.stripe_secret_key:
        raise errors.STRIPE_NOT_SET()
    statement = stripe_balance.read_api(_client(node))
    return store(node, statement, "stripe-api", STRIPE_ACCOUNT, by=by, progress=progress)


def _client(node: Node) -> stripe.StripeClient:
    import stripe

    base = node.settings.stripe_api_base
    return stripe.StripeClient(
        node.settings.stripe_secret_key,
        base_addresses={"api": base} if base else None,
        max_network_retries=2,
    )


def keyed(statement: Statement) -> list[tuple[str, int, ParsedLine]]:
    """Each line with its key: the bank's reference (or the fields' hash) and `#n`, its
    occurrence in the file."""
    seen: dict[str, int] = {}
    found = []
    for line in statement.lines:
        base = line.base_key()
        seen[base] = seen.get(base, 0) + 1
        found.append((f"{base}#{seen[base]}"[:160], seen[base], line))
    return found


def store(
    node: Node,
    statement: Statement,
    fmt: str,
    account: str,
    *,
    by: str | None,
    progress: Callable[[int, int], None] | None = None,
    again: bool = False,
) -> Imported:
    lines = keyed(statement)
    at = now_ms()
    try:
        with node.engine.begin() as conn:
            statement_id = repository.insert_statement(
                conn,
                account=account,
                format=fmt,
                name=statement.name[:200] or fmt,
                lines_read=len(lines),
                lines_added=0,
                imported_by=by,
                imported_ms=at,
            )
            known = repository.known_keys(conn, account, (key for key, _, _ in lines))
            added = 0
            for done, (key, occurrence, line) in enumerate(lines, start=1):
                if key not in known:
                    _insert(conn, statement_id, account, key, occurrence, line)
                    added += 1
                if progress is not None:
                    progress(done, len(lines))
            repository.set_added(conn, statement_id, added)
            matched = auto_match(conn, account, at, node.plugins)
    except IntegrityError:
        if again:
            raise
        # Another import of the same lines (or a match by hand) committed first: once more,
        # its lines are known and its matches taken.
        return store(node, statement, fmt, account, by=by, progress=progress, again=True)
    return Imported(statement_id, account, len(lines), added, matched, view(node, account))


def _insert(
    conn: Connection, statement_id: int, account: str, key: str, occurrence: int, line: ParsedLine
) -> None:
    repository.insert_line(
        conn,
        statement_id=statement_id,
        account=account,
        line_key=key,
        occurrence=occurrence,
        booked=line.booked.isoformat(),
        value_date=line.value_date.isoformat() if line.value_date else None,
        amount=line.amount,
        reference=line.reference,
        end_to_end=line.end_to_end,
        extra_ref=line.extra_ref,
        label=line.label,
    )


# -- matching ---------------------------------------------------------------------------------


def _line(row: RowMapping) -> Line:
    return Line(
        id=int(row["id"]),
        account=str(row["account"]),
        booked=str(row["booked"]),
        amount=int(row["amount"]),
        reference=row["reference"],
        end_to_end=row["end_to_end"],
        label=str(row["label"] or ""),
        duplicate=int(row["occurrence"]) > 1 and row["reference"] is not None,
    )


def _words(row: RowMapping) -> str:
    """The line's references and label as one run of words, lower case, space-bounded."""
    text = " ".join(str(row[c] or "") for c in ("reference", "end_to_end", "extra_ref", "label"))
    return f" {_spaced(text)} "


def _spaced(text: str) -> str:
    return " ".join(w.strip(".") for w in _WORDS.split(text.lower()) if w.strip("."))


def _names(words: str, reference: str) -> bool:
    """Whether a line names `reference`: as a word, or as its words in a row (a paying-in
    slip typed "BV 2026 0142"), or with its words run together ("BV20260142")."""
    spaced = _spaced(reference)
    if not spaced:
        return False
    return f" {spaced} " in words or f" {spaced.replace(' ', '')} " in words


def _day_of(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


def _days_apart(row: RowMapping, movement: Movement) -> int:
    return abs((date.fromisoformat(str(row["booked"])) - _day_of(movement.created_ms)).days)


def _span(rows: list[RowMapping]) -> tuple[int, int]:
    """The moments a statement's lines cover, widened by the matching window."""
    days = [date.fromisoformat(str(r["booked"])) for r in rows]
    start = datetime.combine(min(days) - timedelta(days=WINDOW_DAYS), datetime.min.time(), UTC)
    end = datetime.combine(max(days) + timedelta(days=WINDOW_DAYS + 1), datetime.min.time(), UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000) - 1


@dataclass
class _Open:
    """What is still unmatched on each side while matching."""

    lines: list[RowMapping]
    movements: list[Movement]
    refused: set[tuple[int, int]]

    def take(self, row: RowMapping, movements: Sequence[Movement]) -> None:
        self.lines.remove(row)
        for movement in movements:
            self.movements.remove(movement)


def _open(conn: Connection, account: str, plugins: Plugins) -> _Open | None:
    rows = repository.lines_of(conn, account)
    if not rows:
        return None
    live = repository.live_matches(conn, account)
    taken_lines = {int(m["line_id"]) for m in live}
    taken_moves = {int(m["transfer_id"]) for m in live}
    since, until = _span(rows)
    moves = [
        m
        for m in repository.movements(conn, account, since, until)
        if m.transfer_id not in taken_moves
    ]
    free = [r for r in rows if int(r["id"]) not in taken_lines]
    moves = _with_hand_records(plugins, conn, moves)
    return _Open(free, moves, repository.undone_pairs(conn, account))


def _with_hand_records(plugins: Plugins, conn: Connection, moves: list[Movement]) -> list[Movement]:
    """The movements, each with the bank reference the treasurer typed when another feature
    recorded it found on the statement by hand (an office's deposit): one reference more to
    match it by. That record stays the other feature's; a match of such a movement is made
    as any other (it is the bank's confirmation of what the treasurer said)."""
    wanted = sorted({m.transfer_id for m in moves})
    if not wanted:
        return moves
    typed: dict[int, str] = {}
    said = plugins.each("sou_bank_confirmations", conn=conn, transfer_ids=wanted)
    for _plugin, confirmations in said:
        for c in sorted(confirmations, key=lambda c: c.at_ms):
            if c.how == "hand" and c.bank_ref:
                typed.setdefault(c.transfer_id, c.bank_ref)
    return [m if m.transfer_id not in typed else _typed(m, typed[m.transfer_id]) for m in moves]


def _typed(movement: Movement, bank_ref: str) -> Movement:
    more = {bank_ref} if repository.usable(bank_ref) else set()
    return replace(movement, reconciled_by_hand=bank_ref, references=movement.references | more)


def bank_confirmations(conn: Connection, transfer_ids: Sequence[int]) -> list[BankConfirmation]:
    """The statement lines matched to these transfers (live matches), as the
    `sou_bank_confirmations` hook says them to the other features."""
    return [
        BankConfirmation(
            int(m["transfer_id"]),
            "statement",
            m["reference"],
            int(m["matched_ms"]),
            m["matched_by"],
            line_id=int(m["line_id"]),
            booked=str(m["booked"]),
            account=str(m["account"]),
        )
        for m in repository.live_matches_of(conn, transfer_ids)
    ]


_Pick = Callable[[RowMapping, _Open], Sequence[Movement] | None]


def auto_match(conn: Connection, account: str, at_ms: int, plugins: Plugins) -> int:
    """Match the open lines of `account`: by reference (one movement, then a batch the line
    names), then by amount and date (one movement, then a batch). The matches made."""
    state = _open(conn, account, plugins)
    if state is None:
        return 0
    made = 0
    passes: tuple[tuple[str, _Pick], ...] = (
        ("reference", _alone(_by_reference)),
        # Before the amount alone: a line naming its transfer file is that file's, even
        # when one other movement happens to have the file's total.
        ("reference", _batch_by_reference),
        ("amount", _alone(_by_amount)),
        ("amount", _batch_by_amount),
    )
    for how, pick in passes:
        for row in [r for r in state.lines if not _line(r).duplicate]:
            found = pick(row, state)
            if not found:
                continue
            state.take(row, found)
            for part, movement in enumerate(found):
                repository.insert_match(
                    conn,
                    line_id=row["id"],
                    transfer_id=movement.transfer_id,
                    account=account,
                    how=how,
                    part=part,
                    matched_ms=at_ms,
                )
            made += len(found)
    return made


def _alone(pick: Callable[[RowMapping, _Open], Movement | None]) -> _Pick:
    def picked(row: RowMapping, state: _Open) -> list[Movement] | None:
        found = pick(row, state)
        return None if found is None else [found]

    return picked


def _allowed(row: RowMapping, movement: Movement, state: _Open) -> bool:
    return (int(row["id"]), movement.transfer_id) not in state.refused


def _by_reference(row: RowMapping, state: _Open) -> Movement | None:
    words = _words(row)
    return next(
        (
            m
            for m in state.movements
            if m.amount == row["amount"]
            and _allowed(row, m, state)
            and any(_names(words, ref) for ref in m.references)
        ),
        None,
    )


def _by_amount(row: RowMapping, state: _Open) -> Movement | None:
    candidates = [
        m
        for m in state.movements
        if m.amount == row["amount"]
        and _allowed(row, m, state)
        and _days_apart(row, m) <= WINDOW_DAYS
        # a movement naming a reference the line does not carry is not this line's
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda m: (_days_apart(row, m), m.transfer_id))


# -- a transfer file booked on one line -----------------------------------------------------


def _batches(state: _Open) -> dict[str, list[Movement]]:
    """The open payouts of each transfer file, by its bank reference (marking a file paid
    gives all its payouts that reference): the files with two payouts or more."""
    found: dict[str, list[Movement]] = {}
    for m in state.movements:
        if m.kind == "payout" and m.bank_ref:
            found.setdefault(m.bank_ref, []).append(m)
    return {ref: payouts for ref, payouts in found.items() if len(payouts) > 1}


def _end_to_end(payout: Movement) -> str | None:
    """The id the transfer file gave a payout's transfer (merchants/payouts/sepa.py)."""
    return None if payout.reconversion is None else f"SOU-RECONVERSION-{payout.reconversion}"


def _files_named(row: RowMapping, state: _Open) -> set[str]:
    """The bank references of the transfer files a line names: the file's own reference,
    or one of its payouts' end-to-end ids (a bank listing a batch's ids may have to stop
    before the last, for want of room; one names the file, the sum checks the rest)."""
    words = _words(row)
    named = set()
    for m in state.movements:
        if m.kind != "payout" or not m.bank_ref:
            continue
        e2e = _end_to_end(m)
        if (repository.usable(m.bank_ref) and _names(words, m.bank_ref)) or (
            e2e and _names(words, e2e)
        ):
            named.add(m.bank_ref)
    return named


def _fits(row: RowMapping, payouts: list[Movement], state: _Open) -> bool:
    return sum(m.amount for m in payouts) == row["amount"] and all(
        _allowed(row, m, state) for m in payouts
    )


def _batch_by_reference(row: RowMapping, state: _Open) -> list[Movement] | None:
    """Every open payout of the files the line names (a bank may book two files made the
    same day on one line): all of them or none, never a part of a file."""
    named = _files_named(row, state)
    payouts = [m for m in state.movements if m.kind == "payout" and m.bank_ref in named]
    return payouts if len(payouts) > 1 and _fits(row, payouts, state) else None


def _batch_by_amount(row: RowMapping, state: _Open) -> list[Movement] | None:
    if _files_named(row, state):  # a line naming a payout is not another file's
        return None
    candidates = [
        payouts
        for payouts in _batches(state).values()
        if _fits(row, payouts, state) and all(_days_apart(row, m) <= WINDOW_DAYS for m in payouts)
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda p: (max(_days_apart(row, m) for m in p), min(m.transfer_id for m in p)),
    )


def _near_misses(state: _Open) -> list[NearMiss]:
    misses = []
    for row in state.lines:
        words = _words(row)
        for m in state.movements:
            named = any(_names(words, ref) for ref in m.references)
            close = (
                _days_apart(row, m) <= WINDOW_DAYS
                and 0 < abs(row["amount"] - m.amount) <= NEAR_CENTS
                and (row["amount"] > 0) == (m.amount > 0)
            )
            if close or (named and row["amount"] != m.amount):
                misses.append(NearMiss(_line(row), m, int(row["amount"]) - m.amount))
    return misses


# -- what the treasurer sees ------------------------------------------------------------------


def view(node: Node, account: str) -> AccountView:
    if account not in ACCOUNTS:
        raise errors.BAD_ACCOUNT()
    with node.engine.connect() as conn:
        return _view(conn, account, node.plugins)


def _view(conn: Connection, account: str, plugins: Plugins) -> AccountView:
    state = _open(conn, account, plugins)
    shown = AccountView(account)
    if state is None:
        return shown
    by_id = {int(r["id"]): r for r in repository.lines_of(conn, account)}
    live = repository.live_matches(conn, account)
    parts = Counter(int(m["line_id"]) for m in live)
    first: dict[int, int] = {}
    for m in live:  # in the order made; a batch's movements in their order on the line
        first.setdefault(int(m["line_id"]), int(m["id"]))
    read = [repository.movement(conn, account, int(m["transfer_id"])) for m in live]
    found = _with_hand_records(plugins, conn, [m for m in read if m is not None])
    movements = {m.transfer_id: m for m in found}
    for m in sorted(live, key=lambda m: (first[int(m["line_id"])], int(m["part"]))):
        moved = movements.get(int(m["transfer_id"]))
        if moved is not None:
            line_id = int(m["line_id"])
            shown.matched.append(
                Match(
                    int(m["id"]),
                    _line(by_id[line_id]),
                    moved,
                    str(m["how"]),
                    m["note"],
                    part=int(m["part"]),
                    parts=parts[line_id],
                )
            )
    shown.unmatched_lines = [_line(r) for r in state.lines]
    shown.unmatched_movements = list(state.movements)
    shown.near_misses = _near_misses(state)
    return shown


def confirm_at(movement: Movement) -> str | None:
    """Where the feature that owns what a matched movement confirms shows it (the
    reconciliation writes only its own tables): an office's deposit on the offices' page
    (reconciled there by this match, through the hook); a reconversion's payout, its
    transfer file."""
    if movement.kind == "cash_deposit" and movement.account == "reserve:digital":
        return f"/treasurer/offices?deposit={movement.transfer_id}"
    if movement.kind == "payout" and movement.reconversion is not None:
        return f"/treasurer/payouts?reconversion={movement.reconversion}"
    return None


def views(node: Node) -> list[AccountView]:
    return [view(node, account) for account in ACCOUNTS]


def statements(node: Node, account: str) -> list[dict[str, Any]]:
    with node.engine.connect() as conn:
        return [dict(r) for r in repository.statements_of(conn, account)]


# -- by hand ----------------------------------------------------------------------------------


def match_by_hand(
    node: Node, by: str, line_id: int, transfer_ids: Sequence[int], note: str
) -> list[Match]:
    """The treasurer's word that a line goes with a transfer the node could not pair it
    with (another amount, a reference the node does not know), said in a note; or with
    several transfers the bank booked on this one line, which must add up to it exactly.
    All the matches are made, or none."""
    note = " ".join(note.split())
    if not 1 <= len(note) <= 280:
        raise errors.NOTE_NEEDED()
    wanted = list(dict.fromkeys(transfer_ids))  # a transfer chosen twice is there once
    if not wanted:
        raise errors.MOVEMENT_NEEDED()
    if len(wanted) > MAX_PARTS:
        raise errors.TOO_MANY_MOVEMENTS(maximum=MAX_PARTS)
    try:
        with node.engine.begin() as conn:
            row, moved = _open_pair(conn, line_id, wanted)
            moved = _with_hand_records(node.plugins, conn, moved)
            total = sum(m.amount for m in moved)
            if len(moved) > 1 and total != row["amount"]:
                raise errors.BATCH_SUM_DIFFERS(
                    count=len(moved), total=Money(total), amount=Money(int(row["amount"]))
                )
            at = now_ms()
            made = [
                repository.insert_match(
                    conn,
                    line_id=line_id,
                    transfer_id=m.transfer_id,
                    account=row["account"],
                    how="hand",
                    note=note,
                    part=part,
                    matched_by=by,
                    matched_ms=at,
                )
                for part, m in enumerate(moved)
            ]
    except IntegrityError as exc:  # matched by someone else meanwhile
        raise errors.LINE_MATCHED() from exc
    line = _line(row)
    return [
        Match(match_id, line, m, "hand", note, part=part, parts=len(moved))
        for part, (match_id, m) in enumerate(zip(made, moved, strict=True))
    ]


def _open_pair(
    conn: Connection, line_id: int, transfer_ids: list[int]
) -> tuple[RowMapping, list[Movement]]:
    """A line and movements on its account, none of them matched yet; else the refusal."""
    row = repository.line(conn, line_id)
    if row is None:
        raise errors.UNKNOWN_LINE()
    account = str(row["account"])
    moved = []
    for transfer_id in transfer_ids:
        found = repository.movement(conn, account, transfer_id)
        if found is None:
            raise errors.UNKNOWN_MOVEMENT(transfer=transfer_id, account=account)
        moved.append(found)
    if repository.live_match_of_line(conn, line_id) is not None:
        raise errors.LINE_MATCHED()
    for m in moved:
        if repository.live_match_of_movement(conn, m.transfer_id, account) is not None:
            raise errors.MOVEMENT_MATCHED(transfer=m.transfer_id)
    return row, moved


def undo(node: Node, by: str, match_id: int) -> str:
    """Undo a match (kept in the history, stamped), and with it the rest of its line's
    batch: its line and movements are open again, and the automatic matching does not pair
    them again. The match's account."""
    at = now_ms()
    with node.engine.begin() as conn:
        found = repository.match(conn, match_id)
        if found is None or not repository.undo_match(conn, match_id, by, at):
            raise errors.UNKNOWN_MATCH()
        # A line's live matches are one batch (the database holds it: one part 0 per line).
        repository.undo_line(conn, int(found["line_id"]), by, at)
        return str(found["account"])
