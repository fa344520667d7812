"""The paper notes' rules, after the Eusko's chart and the Léman's QR notes.

The treasurer makes a series (a `note_print` transfer signed by the treasurer's role key:
its units leave `issuance:paper` for the printed stock) and sends notes to an exchange office
(`note_dispatch`); the office sells them for cash (`note_sale`, signed by the office's role
key: the units enter circulation as the euros enter its till) and takes that cash to the
paper reserve (`cash_deposit`); a merchant who takes a note deposits it into their wallet
(`note_deposit`, signed on their own device); the treasurer voids notes lost (`note_void`).

Where a note is, the ledger says: each move of a note uses up the one-time token of the
state it leaves (`ledger.operations.note_once`), so the database lets a note be sold once and
deposited once, whatever retries, processes or shops race. A note's QR code is a link the
node signed (series, serial, denomination, and the series' end of validity if it has one):
any phone opens it, and anyone with the node's public key can check it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError

from ledger import repository as ledger_repo
from ledger.canonical import b64, unb64
from ledger.chart import office_cash
from ledger.errors import LedgerError
from ledger.operations import (
    DENOMINATIONS,
    MAX_SERIES_SIZE,
    SERIES,
    TREASURER,
    deposit_memo,
    note_once,
    note_series_once,
    notes_office,
)
from ledger.orders import MAX_MEMO
from ledger.posting import Posted
from ledger.signing import SignedOrder
from members.access import Member
from members.errors import (
    AMOUNT_TOO_LARGE,
    BAD_AMOUNT,
    BAD_KIND,
    BAD_REQUEST_ID,
    FORBIDDEN,
    IDEMPOTENCY_CONFLICT,
    WALLET_FROZEN,
)
from members.shops import shop_of
from pos.notes import repository as repo
from pos.notes.errors import (
    BAD_DENOMINATION,
    BAD_NOTE_COUNT,
    BAD_SERIALS,
    BAD_SERIES,
    BAD_VALID_UNTIL,
    NOTE_DEPOSIT_MISMATCH,
    NOTE_DEPOSITED,
    NOTE_ELSEWHERE,
    NOTE_EXPIRED,
    NOTE_FORGED,
    NOTE_LINK_DAMAGED,
    NOTE_LINK_TOO_LONG,
    NOTE_NOT_ISSUED,
    NOTE_SHOP_NOT_OPEN,
    NOTE_SLIP_REF,
    NOTE_TILL_SHORT,
    NOTE_VOID,
    NOTES_NOT_AT_OFFICE,
    NOTES_NOT_IN_STOCK,
    NOTHING_TO_VOID,
    PAPER_RESERVE_SHORT,
    SERIES_EXISTS,
    TOO_MANY_NOTES,
    UNKNOWN_NOTE_OFFICE,
    UNKNOWN_NOTE_SERIES,
    VOID_REASON_MISSING,
)
from pos.notes.sheet import PrintedNote, sheet_pdf
from runtime.links import LinkRefused, check_link, sign_link
from runtime.signing import post, posted_or_existing, sign_as
from web.i18n import first_day
from web.refusals import Money

if TYPE_CHECKING:
    from runtime.node import Node

MAX_AT_ONCE = 1000  # notes one request moves: a bundle for an office, a lost series
MAX_LINK = 400  # characters: a note's link is about 150
SERIAL = re.compile(r"^[1-9][0-9]{0,4}$")
NUMBER = re.compile(r"^[0-9]{1,15}$")
MAX_SIGNATURE = 100
LINK_PARAMS = frozenset({"d", "s", "e"})
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$")
SLIP_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _./#-]{0,63}$")
# The office's own deposits are recorded with this memo; its reconciliation reads it back.
LINK_REFUSALS = {"malformed": NOTE_LINK_DAMAGED, "altered": NOTE_FORGED, "expired": NOTE_EXPIRED}


def now_ms() -> int:
    return int(time.time() * 1000)


# -- series ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    id: str
    denomination: int  # cents of the local unit
    count: int  # serials 1 to count
    valid_until: int | None  # the last second its notes are good (seconds since the epoch)
    created_by: str | None
    created_ms: int
    state: str  # printed, or voided (declared lost)
    voided_ms: int | None = None

    def link_fields(self, serial: int) -> dict[str, str | int]:
        """What a note's QR code carries, signed by the node."""
        fields: dict[str, str | int] = {
            "series": self.id,
            "serial": serial,
            "denomination": self.denomination,
        }
        if self.valid_until is not None:
            fields["expires"] = self.valid_until
        return fields

    @classmethod
    def from_row(cls, row: RowMapping) -> Series:
        return cls(
            row["id"],
            int(row["denomination"]),
            int(row["count"]),
            row["valid_until"],
            row["created_by"],
            row["created_ms"],
            row["state"],
            row["voided_ms"],
        )


def _series_id(text: str) -> str:
    series = (text or "").strip().upper()
    if not SERIES.match(series):
        raise BAD_SERIES()
    return series


def find_series(node: Node, series_id: str) -> Series:
    record_missing_series(node)
    with node.ledger.reading() as conn:
        row = repo.series(conn, series_id) if SERIES.match(series_id) else None
    if row is None:
        raise UNKNOWN_NOTE_SERIES(series=series_id)
    return Series.from_row(row)


def last_day(node: Node, day: date) -> int:
    """The last second of `day` in the node's time zone."""
    end = datetime.combine(day, clock.max, ZoneInfo(node.settings.timezone))
    return int(end.timestamp())


def create_series(
    node: Node,
    treasurer: Member,
    series_text: str,
    denomination: int,
    count: int,
    valid_until: date | None = None,
) -> Series:
    """Print a series: `count` notes worth `denomination` cents each go into the printed
    stock, by a `note_print` transfer signed by the treasurer's role key."""
    series_id = _series_id(series_text)
    if denomination not in DENOMINATIONS:
        raise BAD_DENOMINATION()
    if isinstance(count, bool) or not 1 <= count <= MAX_SERIES_SIZE:
        raise BAD_NOTE_COUNT(maximum=MAX_SERIES_SIZE)
    fields: dict[str, Any] = {
        "series": series_id,
        "denomination": denomination,
        "count": count,
        "currency": node.ledger.chart.local,
    }
    if valid_until is not None:
        if valid_until <= datetime.now(ZoneInfo(node.settings.timezone)).date():
            raise BAD_VALID_UNTIL()
        fields["valid_until"] = last_day(node, valid_until)
    record_missing_series(node)
    with node.ledger.reading() as conn:
        if repo.series(conn, series_id) is not None:
            raise SERIES_EXISTS(series=series_id)
    signed = sign_as(node, TREASURER, "note_print", f"note-print:{series_id}", **fields)
    try:
        posted = posted_or_existing(node, TREASURER, signed)
    except LedgerError as exc:
        if exc.code == "already_used":
            raise SERIES_EXISTS(series=series_id) from None
        raise
    if posted is None:  # printed meanwhile by another request: the first one stands
        raise SERIES_EXISTS(series=series_id)
    _record_series(node, signed.order, posted.created_ms, treasurer.id)
    return find_series(node, series_id)


def _record_series(node: Node, order: Mapping[str, Any], created_ms: int, by: str | None) -> None:
    values = {
        "id": order["series"],
        "denomination": order["denomination"],
        "count": order["count"],
        "valid_until": order.get("valid_until"),
        "created_by": by,
        "created_ms": created_ms,
        "state": "printed",
    }
    try:
        with node.engine.begin() as conn:
            repo.insert_series(conn, values)
    except IntegrityError:
        pass  # written meanwhile by the same request, or rebuilt from the ledger


def record_missing_series(node: Node) -> int:
    """Write the rows of series printed without one (the node stopped in between); how many."""
    with node.ledger.reading() as conn:
        known = {row["id"] for row in repo.all_series(conn)}
        missing = [
            (json.loads(p["order_json"]), p["created_ms"])
            for p in repo.prints(conn)
            if json.loads(p["order_json"])["series"] not in known
        ]
    for order, created_ms in missing:
        _record_series(node, order, created_ms, None)
    return len(missing)


def all_series(node: Node) -> list[Series]:
    record_missing_series(node)
    with node.ledger.reading() as conn:
        return [Series.from_row(row) for row in repo.all_series(conn)]


# -- notes and where they are --------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """One note and where the ledger says it is: stock (printed, not sent anywhere), office
    (at `office`, not sold), circulation (sold), deposited (into `member`'s wallet), void."""

    series: Series
    serial: int
    state: str
    ref: int  # the transfer that brought it where it is: what its next move refers to
    office: str | None = None
    member: str | None = None
    moved_ms: int | None = None  # when it came where it is

    @property
    def name(self) -> str:
        return f"{self.series.id}-{self.serial}"

    @property
    def denomination(self) -> int:
        return self.series.denomination


def _print_of(node: Node, series: Series) -> RowMapping:
    with node.ledger.reading() as conn:
        found = repo.by_once(conn, [note_series_once(series.id)]).get(note_series_once(series.id))
    if found is None:  # a row without its transfer: the ledger knows no such series
        raise UNKNOWN_NOTE_SERIES(series=series.id)
    return found


def _moved(note: Note, move: RowMapping) -> Note:
    """The note after one of its moves (a transfer of the ledger)."""
    order = json.loads(move["order_json"])
    kind, moved = move["kind"], {"ref": move["id"], "moved_ms": move["created_ms"]}
    if kind == "note_dispatch":
        return Note(note.series, note.serial, "office", office=order["office"], **moved)
    if kind == "note_sale":
        return Note(note.series, note.serial, "circulation", office=note.office, **moved)
    if kind == "note_deposit":
        member = str(order["to"]).removeprefix("member:")
        return Note(note.series, note.serial, "deposited", member=member, **moved)
    return Note(note.series, note.serial, "void", office=note.office, **moved)


def find_note(node: Node, series: Series, serial: int) -> Note:
    """Where the ledger says this note is."""
    printed = _print_of(node, series)
    note = Note(series, serial, "stock", printed["id"], moved_ms=printed["created_ms"])
    leaving = [note_once(series.id, serial, state) for state in ("stock", "office", "circulation")]
    with node.ledger.reading() as conn:
        found = repo.by_once(conn, leaving)
    for token in leaving:  # in the order a note moves
        if token in found:
            note = _moved(note, found[token])
    return note


def series_notes(node: Node, series: Series) -> list[Note]:
    """Every note of a series, where it is."""
    printed = _print_of(node, series)
    notes = [
        Note(series, n, "stock", printed["id"], moved_ms=printed["created_ms"])
        for n in range(1, series.count + 1)
    ]
    with node.ledger.reading() as conn:
        moves = repo.moves(conn, series.id)
    for move in moves:  # in the order they were posted: a note's moves follow each other
        serial = int(str(move["once_key"]).split(":")[2])
        notes[serial - 1] = _moved(notes[serial - 1], move)
    return notes


# -- the links of the notes' QR codes ------------------------------------------------------------


def note_link(node: Node, origin: str, series: Series, serial: int) -> str:
    """The address a note's QR code carries: its check page, signed by the node."""
    fields = series.link_fields(serial)
    query: dict[str, str | int] = {"d": series.denomination}
    if series.valid_until is not None:
        query["e"] = series.valid_until
    query["s"] = sign_link(node, "note", fields)
    return f"{origin}/n/{series.id}/{serial}?{urlencode(query)}"


def read_link(node: Node, origin: str, text: str) -> Note:
    """The note a scanned code names, once it is found to be a link of this node, signed
    by it, and still good. Each way a code can be wrong has its own refusal."""
    if len(text) > MAX_LINK:
        raise NOTE_LINK_TOO_LONG()
    try:
        parts, mine = urlsplit(text.strip()), urlsplit(origin)
        host = parts.netloc
    except ValueError:
        raise NOTE_LINK_DAMAGED() from None
    if parts.scheme not in ("http", "https") or not host or not host.isprintable():
        raise NOTE_LINK_DAMAGED()
    if (parts.scheme, host.lower()) != (mine.scheme, mine.netloc.lower()):
        raise NOTE_ELSEWHERE(host=host)
    path = parts.path.removeprefix(mine.path.rstrip("/"))
    steps = path.split("/")
    if len(steps) != 4 or steps[:2] != ["", "n"]:
        raise NOTE_LINK_DAMAGED()
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise NOTE_LINK_DAMAGED() from None
    query = dict(pairs)
    if len(query) != len(pairs):  # a parameter twice
        raise NOTE_LINK_DAMAGED()
    return read_note(node, steps[2], steps[3], query)


def read_note(node: Node, series_id: str, serial_text: str, query: Mapping[str, str]) -> Note:
    """The note of a check page's address (`/n/<series>/<serial>?d=&s=[&e=]`)."""
    signature = query.get("s", "")
    numbers = [query.get("d", "")] + ([query["e"]] if "e" in query else [])
    if (
        not SERIES.match(series_id)
        or not SERIAL.match(serial_text)
        or not query.keys() <= LINK_PARAMS
        or not 0 < len(signature) <= MAX_SIGNATURE
        or not all(NUMBER.match(n) for n in numbers)
    ):
        raise NOTE_LINK_DAMAGED()
    fields: dict[str, str | int] = {
        "series": series_id,
        "serial": int(serial_text),
        "denomination": int(query["d"]),
    }
    if "e" in query:
        fields["expires"] = int(query["e"])
    try:
        # One signature, one spelling: base64url without padding, no stray low bits.
        if b64(unb64(signature)) != signature:
            raise NOTE_LINK_DAMAGED()
        check_link(node, "note", fields, signature)
    except LinkRefused as exc:
        raise LINK_REFUSALS[exc.reason]() from None
    except (ValueError, TypeError):
        raise NOTE_LINK_DAMAGED() from None
    series = find_series(node, series_id)
    if series.link_fields(int(serial_text)) != fields:  # signed, but not as the series is
        raise NOTE_FORGED()
    return find_note(node, series, int(serial_text))


def refuse_unless_in_circulation(note: Note) -> None:
    """A note is worth its value only while in circulation: each other state says why not."""
    if note.state == "deposited":
        raise NOTE_DEPOSITED()
    if note.state == "void":
        raise NOTE_VOID()
    if note.state != "circulation":
        raise NOTE_NOT_ISSUED()


# -- moving notes: several transfers at once -------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    """What a request did: how many notes moved, worth how much, which ones."""

    series: str
    count: int
    amount: int
    first: int
    last: int
    transfers: list[int] = field(default_factory=list)


def _post_all(node: Node, orders: Sequence[SignedOrder]) -> list[Posted | LedgerError]:
    """Post orders together: through the group-commit poster when it runs (they share its
    batches), else in one transaction per few hundred. Each order meets its own fate."""
    if node.poster is not None:
        futures = [node.poster.submit(order) for order in orders]
        outcomes: list[Posted | LedgerError] = []
        for future in futures:
            try:
                outcomes.append(future.result(60))
            except LedgerError as exc:
                outcomes.append(exc)
        return outcomes
    done: list[Posted | LedgerError] = []
    for start in range(0, len(orders), 200):
        done += node.ledger.post(orders[start : start + 200])
    return done


def _range(series: Series, first: int, last: int) -> range:
    if not 1 <= first <= last <= series.count:
        raise BAD_SERIALS(count=series.count)
    if last - first + 1 > MAX_AT_ONCE:
        raise TOO_MANY_NOTES(maximum=MAX_AT_ONCE)
    return range(first, last + 1)


def _moved_all(
    series: Series, notes: Sequence[Note], outcomes: Sequence[Posted | LedgerError]
) -> Moved:
    """The notes moved; the first refusal if any was refused (an idempotency conflict is
    the same move made before by a repeat of the request: it stands)."""
    posted = [o for o in outcomes if isinstance(o, Posted)]
    refused = [
        o for o in outcomes if isinstance(o, LedgerError) and o.code != "idempotency_conflict"
    ]
    if refused:
        raise refused[0]
    serials = [n.serial for n in notes]
    return Moved(
        series.id,
        len(notes),
        len(notes) * series.denomination,
        min(serials),
        max(serials),
        [p.transfer_id for p in posted],
    )


def _note_fields(node: Node, note: Note) -> dict[str, Any]:
    return {
        "series": note.series.id,
        "serial": note.serial,
        "denomination": note.denomination,
        "currency": node.ledger.chart.local,
        "ref": note.ref,
    }


def offices(node: Node) -> list[str]:
    with node.ledger.reading() as conn:
        return repo.offices(conn)


def dispatch(
    node: Node, treasurer: Member, series_id: str, first: int, last: int, office: str
) -> Moved:
    """Send notes of the printed stock to an exchange office (its operators sell them)."""
    series = find_series(node, _series_id(series_id))
    serials = _range(series, first, last)
    if office not in offices(node):
        raise UNKNOWN_NOTE_OFFICE(office=office)
    notes = series_notes(node, series)[serials.start - 1 : serials.stop - 1]
    for note in notes:
        if note.state != "stock":
            raise NOTES_NOT_IN_STOCK(note=note.name)
    node.ledger.ensure_accounts([notes_office(office)])
    orders = [
        sign_as(
            node,
            TREASURER,
            "note_dispatch",
            f"note-dispatch:{note.name}",
            office=office,
            **_note_fields(node, note),
        )
        for note in notes
    ]
    try:
        return _moved_all(series, notes, _post_all(node, orders))
    except LedgerError as exc:
        if exc.code in ("already_used", "insufficient_funds"):  # sent meanwhile by another
            raise NOTES_NOT_IN_STOCK(note=f"{series.id}-{first}…{last}") from None
        raise


def void(
    node: Node, treasurer: Member, series_id: str, first: int, last: int, reason: str
) -> Moved:
    """Void notes lost (a series stolen, notes destroyed): those in stock or at an office
    go back to issuance; those in circulation too, their euros out of the paper reserve.
    Notes already deposited or voided are left as they are."""
    reason = " ".join(reason.split())
    if not reason or len(reason) > MAX_MEMO or not reason.isprintable():
        raise VOID_REASON_MISSING(maximum=MAX_MEMO)
    series = find_series(node, _series_id(series_id))
    serials = _range(series, first, last)
    notes = [
        n
        for n in series_notes(node, series)[serials.start - 1 : serials.stop - 1]
        if n.state in ("stock", "office", "circulation")
    ]
    if not notes:
        raise NOTHING_TO_VOID()
    # Checked before anything moves, so that a void is not left half done for want of euros.
    owed = sum(n.denomination for n in notes if n.state == "circulation")
    reserve = node.ledger.balance("reserve:paper")
    if owed > reserve:
        raise PAPER_RESERVE_SHORT(available=Money(reserve, "EUR"))
    orders = [
        sign_as(
            node,
            TREASURER,
            "note_void",
            f"note-void:{note.name}:{note.state}",
            memo=reason,
            **_note_fields(node, note),
        )
        for note in notes
    ]
    try:
        moved = _moved_all(series, notes, _post_all(node, orders))
    except LedgerError as exc:
        if exc.code == "insufficient_funds" and exc.params.get("account") == "reserve:paper":
            available = int(exc.params.get("available", 0))
            raise PAPER_RESERVE_SHORT(available=Money(available, "EUR")) from None
        raise
    if all(n.state in ("deposited", "void") for n in series_notes(node, series)):
        with node.engine.begin() as conn:
            repo.mark_voided(conn, series.id, now_ms())
    return moved


# -- the exchange office -------------------------------------------------------------------------


def office_role(office: str) -> str:
    return f"role:office:{office}"


def _office_of(operator: Member) -> str:
    if operator.role != "office" or not operator.office:
        raise FORBIDDEN()
    return operator.office


def sell(node: Node, operator: Member, series_id: str, first: int, last: int) -> Moved:
    """Record notes the office sold for cash: they enter circulation, their euros the
    office's till (one `note_sale` per note, signed by the office's role key)."""
    office = _office_of(operator)
    series = find_series(node, _series_id(series_id))
    serials = _range(series, first, last)
    notes = series_notes(node, series)[serials.start - 1 : serials.stop - 1]
    for note in notes:
        if note.state != "office" or note.office != office:
            raise NOTES_NOT_AT_OFFICE(note=note.name)
    orders = [
        sign_as(
            node,
            office_role(office),
            "note_sale",
            f"note-sale:{note.name}",
            office=office,
            memo=f"sold at {office} by operator {operator.id}",
            **_note_fields(node, note),
        )
        for note in notes
    ]
    try:
        return _moved_all(series, notes, _post_all(node, orders))
    except LedgerError as exc:
        if exc.code in ("already_used", "insufficient_funds"):  # sold meanwhile by another
            raise NOTES_NOT_AT_OFFICE(note=f"{series.id}-{first}…{last}") from None
        raise


@dataclass(frozen=True)
class Holding:
    """Notes of one series an office holds, as runs of consecutive serials."""

    series: str
    denomination: int
    runs: list[tuple[int, int]]

    @property
    def count(self) -> int:
        return sum(last - first + 1 for first, last in self.runs)


@dataclass(frozen=True)
class OfficeNotes:
    office: str
    till: int  # euros in the till, all of them
    note_cash: int  # of which from notes sold and not yet taken to the paper reserve
    holdings: list[Holding]

    @property
    def value(self) -> int:
        return sum(h.count * h.denomination for h in self.holdings)


def _runs(serials: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for serial in sorted(serials):
        if runs and runs[-1][1] == serial - 1:
            runs[-1] = (runs[-1][0], serial)
        else:
            runs.append((serial, serial))
    return runs


def office_notes(node: Node, operator: Member) -> OfficeNotes:
    """What the operator's office holds: its notes by series, its till, its notes' cash."""
    office = _office_of(operator)
    till = office_cash(office)
    by_series: dict[str, tuple[int, list[int]]] = {}
    with node.ledger.reading() as conn:
        for row in repo.at_office(conn, notes_office(office)):
            order = json.loads(row["order_json"])
            entry = by_series.setdefault(order["series"], (int(order["denomination"]), []))
            entry[1].append(int(order["serial"]))
        balance = ledger_repo.balances(conn, [till]).get(till, 0)
        sold, deposited = repo.till_from_notes(conn, till)
    holdings = [Holding(s, d, _runs(serials)) for s, (d, serials) in sorted(by_series.items())]
    return OfficeNotes(office, balance, max(0, min(balance, sold - deposited)), holdings)


def deposit_note_cash(
    node: Node, operator: Member, request_id: str, amount: int, slip_ref: str
) -> int:
    """The office took its notes' cash to the bank: a `cash_deposit` from its till to the
    paper reserve, signed by the office's role key. The transfer's id."""
    office = _office_of(operator)
    if not REQUEST_ID.match(request_id):
        raise BAD_REQUEST_ID()
    if isinstance(amount, bool) or amount <= 0:
        raise BAD_AMOUNT()
    if amount > node.settings.max_amount:
        raise AMOUNT_TOO_LARGE(maximum=Money(node.settings.max_amount))
    slip_ref = slip_ref.strip()
    if not SLIP_REF.match(slip_ref):
        raise NOTE_SLIP_REF()
    owner, client_id = office_role(office), f"deposit:{request_id}"
    with node.ledger.reading() as conn:
        earlier = ledger_repo.transfers_by_client_id(conn, {(owner, client_id)})
    if not earlier:
        available = office_notes(node, operator).note_cash
        if amount > available:
            raise NOTE_TILL_SHORT(available=Money(available, "EUR"))
    signed = sign_as(
        node,
        owner,
        "cash_deposit",
        client_id,
        office=office,
        amount=amount,
        to="reserve:paper",
        memo=deposit_memo(slip_ref, operator.id),
    )
    posted = posted_or_existing(node, owner, signed)
    with node.ledger.reading() as conn:
        stored = ledger_repo.transfers_by_client_id(conn, {(owner, client_id)})[(owner, client_id)]
    if stored.kind != "cash_deposit" or stored.fields.get("amount") != amount:
        raise IDEMPOTENCY_CONFLICT()
    return posted.transfer_id if posted is not None else stored.id


# -- printing -----------------------------------------------------------------------------------


def print_sheet(
    node: Node,
    origin: str,
    series_id: str,
    first: int | None = None,
    last: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> bytes:
    """The PDF of a series' notes (all, or serials `first` to `last`), to print and cut.
    `origin` is where phones reach the node: the notes' codes lead there."""
    series = find_series(node, _series_id(series_id))
    first, last = first or 1, last or series.count
    if not 1 <= first <= last <= series.count:
        raise BAD_SERIALS(count=series.count)
    notes = [
        PrintedNote(series.id, serial, series.denomination, note_link(node, origin, series, serial))
        for serial in range(first, last + 1)
    ]
    valid_until = None
    if series.valid_until is not None:
        day = datetime.fromtimestamp(series.valid_until, ZoneInfo(node.settings.timezone))
        written = format_date(day.date(), "long", locale="fr")  # printed in French
        valid_until = first_day(written, day.day, "fr")
    return sheet_pdf(
        notes,
        village=node.settings.village,
        currency=node.ledger.chart.local,
        valid_until=valid_until,
        progress=progress,
    )


# -- the treasurer's view ------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesSummary:
    series: Series
    stock: int
    offices: dict[str, int]
    circulation: int
    deposited: int
    void: int
    next_in_stock: int | None  # the first serial still in stock

    @property
    def at_offices(self) -> int:
        return sum(self.offices.values())


def summary(node: Node, series: Series) -> SeriesSummary:
    notes = series_notes(node, series)
    counts = {state: 0 for state in ("stock", "circulation", "deposited", "void")}
    at: dict[str, int] = {}
    for note in notes:
        if note.state == "office" and note.office is not None:
            at[note.office] = at.get(note.office, 0) + 1
        else:
            counts[note.state] += 1
    in_stock = next((n.serial for n in notes if n.state == "stock"), None)
    return SeriesSummary(
        series,
        counts["stock"],
        dict(sorted(at.items())),
        counts["circulation"],
        counts["deposited"],
        counts["void"],
        in_stock,
    )


def summaries(node: Node) -> list[SeriesSummary]:
    return [summary(node, series) for series in all_series(node)]


# -- a merchant deposits a note ------------------------------------------------------------------


@dataclass(frozen=True)
class Deposit:
    transfer_id: int
    note: Note
    created_ms: int
    replayed: bool


def _sent_before(node: Node, account: str, client_id: object) -> bool:
    if not isinstance(client_id, str):
        return False
    with node.ledger.reading() as conn:
        return bool(ledger_repo.transfers_by_client_id(conn, {(account, client_id)}))


def may_deposit(node: Node, member: Member) -> None:
    """A merchant whose shop the association approved deposits notes; nobody else."""
    if member.role != "merchant":
        raise FORBIDDEN()
    if member.frozen_reason:
        raise WALLET_FROZEN(reason=member.frozen_reason)
    with node.ledger.reading() as conn:
        shop = shop_of(conn, member.id)
    if shop is None or not shop.approved:
        raise NOTE_SHOP_NOT_OPEN()


def deposit(node: Node, merchant: Member, origin: str, link: str, envelope: SignedOrder) -> Deposit:
    """Credit the merchant's wallet with a note they took: their device signed a
    `note_deposit` naming it. A note is deposited once: a second deposit, by this shop or
    another, at the same moment or later, is refused (the ledger's one-time token)."""
    note = read_link(node, origin, link)
    may_deposit(node, merchant)
    order = envelope.order
    if order.get("kind") != "note_deposit":
        raise BAD_KIND()
    # The same order sent again gets its first answer, whatever happened to the note since.
    if not _sent_before(node, merchant.account, order.get("id")):
        refuse_unless_in_circulation(note)
        wanted = {**_note_fields(node, note), "to": merchant.account}
        if any(order.get(name) != value for name, value in wanted.items()):
            raise NOTE_DEPOSIT_MISMATCH()
    try:
        posted = post(node, envelope)
    except LedgerError as exc:
        # Another deposit of this note got there first: the ledger refused this one for the
        # note's token, or (judged before the token was seen) for circulation's balance.
        if exc.code in ("already_used", "insufficient_funds"):
            refuse_unless_in_circulation(find_note(node, note.series, note.serial))
        if exc.code == "already_used":
            raise NOTE_DEPOSITED() from None
        raise
    return Deposit(posted.transfer_id, note, posted.created_ms, posted.replayed)
