"""The accountant's exports of a period: the journal (CSV), a beancount file, the FEC.

Each export is a generator of text, one page of transfers at a time (`repository.PAGE`), read
in one snapshot of the ledger: a page, the CLI and a million transfers alike never hold more
than a page in memory, and what was committed meanwhile is not half in the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from audits.exports import charts, errors, repository
from audits.exports.repository import Leg, Movement
from ledger.chart import EUR

EXPORTS = ("journal", "beancount", "fec")
Progress = Callable[[int, int], None]  # (transfers written, transfers in the period)

# What each kind of transfer is, in the accountant's words (beancount narrations, FEC).
KIND_LABELS = {
    "topup": "Rechargement (euros convertis en unités)",
    "payment": "Paiement",
    "collection": "Paiement encaissé par un commerce",
    "refund": "Remboursement",
    "allowance_hold": "Mise de côté pour paiement hors ligne",
    "allowance_release": "Retour de mise de côté hors ligne",
    "redemption": "Reconversion en euros",
    "payout": "Virement de reconversion",
    "card_hold": "Blocage (litige carte)",
    "card_release": "Déblocage (litige carte)",
    "card_reversal": "Annulation de recharge par carte",
    "card_write_off": "Perte sur recharge par carte",
    "escrow_payment": "Versement sous séquestre",
    "escrow_release": "Libération de séquestre",
    "escrow_refund": "Remboursement de séquestre",
    "cash_deposit": "Dépôt d'espèces en banque",
    "settlement": "Versement Stripe en banque",
    "note_print": "Impression de billets",
    "note_dispatch": "Billets remis à un comptoir",
    "note_sale": "Vente de billet",
    "note_deposit": "Billet déposé sur un compte",
    "note_void": "Billet annulé",
    "correction": "Correction",
}


# The days a period may hold: transfers have times since 1970; past 9998 a day's end has no
# timestamp.
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(9998, 12, 31)


@dataclass(frozen=True)
class Period:
    """From `start` to `end`, both days included, in the node's time zone."""

    start: date
    end: date

    @classmethod
    def parse(cls, start: str | None, end: str | None, today: date) -> Period:
        """The period typed (ISO dates); an empty bound: the current year's."""
        first = _day(start) if start else date(today.year, 1, 1)
        last = _day(end) if end else date(today.year, 12, 31)
        if not FIRST_DAY <= first <= LAST_DAY or not FIRST_DAY <= last <= LAST_DAY:
            raise errors.OUT_OF_RANGE(first=FIRST_DAY.isoformat(), last=LAST_DAY.isoformat())
        if first > last:
            raise errors.BAD_PERIOD()
        return cls(first, last)

    def bounds_ms(self, timezone: str) -> tuple[int, int]:
        """[first ms, first ms after the period) of the transfers' times."""
        zone = ZoneInfo(timezone)
        start = datetime.combine(self.start, datetime.min.time(), zone)
        after = datetime.combine(self.end + timedelta(days=1), datetime.min.time(), zone)
        return int(start.timestamp() * 1000), int(after.timestamp() * 1000)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise errors.BAD_DATE() from None


@dataclass(frozen=True)
class Books:
    """What the exports read: the ledger's database, its local unit, the node's time zone
    and the association's SIREN (for the FEC's name)."""

    engine: Engine
    local: str
    timezone: str
    siren: str = ""


def file_name(what: str, period: Period, siren: str) -> str:
    if what == "fec":
        if not siren:
            raise errors.NO_SIREN()
        # Article A47 A-1 of the LPF: <SIREN>FEC<closing date>.txt
        return f"{siren}FEC{period.end:%Y%m%d}.txt"
    suffix = {"journal": "csv", "beancount": "beancount"}[what]
    return f"sou-{what}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.{suffix}"


def encoding(what: str) -> str:
    # The FEC's norm names ISO 8859-15 among its encodings; spreadsheets and beancount read UTF-8.
    return "iso-8859-15" if what == "fec" else "utf-8"


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction seeing one state of the ledger from its first query to its last."""
    options: dict[str, object] = {"sqlite_deferred": True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    with engine.connect().execution_options(**options) as conn, conn.begin():
        yield conn


def export(
    what: str, books: Books, period: Period, progress: Progress | None = None
) -> Iterator[str]:
    """The text of one export, a page at a time. Refusals (no SIREN) come before any text."""
    if what not in EXPORTS:
        raise errors.UNKNOWN_EXPORT()
    if what == "fec" and not books.siren:
        raise errors.NO_SIREN()
    writer = {"journal": _journal, "beancount": _beancount, "fec": _fec}[what]
    return _read(writer, books, period, progress)


Writer = Callable[[Connection, Books, Period, Progress], Iterator[str]]


def _read(writer: Writer, books: Books, period: Period, progress: Progress | None) -> Iterator[str]:
    with snapshot(books.engine) as conn:
        yield from writer(conn, books, period, progress or (lambda done, total: None))


def _pages(
    conn: Connection, books: Books, period: Period, progress: Progress
) -> Iterator[list[Movement]]:
    start_ms, end_ms = period.bounds_ms(books.timezone)
    total, done = repository.count(conn, start_ms, end_ms), 0
    progress(0, total)
    for page in repository.movements(conn, start_ms, end_ms):
        yield page
        done += len(page)
        progress(done, max(total, done))


def cents(amount: int, mark: str = ".") -> str:
    """Cents as a decimal figure, exactly: 1250 -> 12.50, -5 -> -0.05."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount) // 100}{mark}{abs(amount) % 100:02d}"


def _local_time(ms: int, timezone: str) -> datetime:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone))


def _memo(fields: dict[str, Any]) -> str:
    parts = [str(fields.get(k, "")) for k in ("memo", "bank_ref", "ext")]
    return " ".join(p for p in parts if p)


# -- the journal (CSV) -----------------------------------------------------------------------

JOURNAL_COLUMNS = (
    "transfer_id",
    "time",
    "kind",
    "client_id",
    "initiator",
    "from",
    "to",
    "ref",
    "memo",
    "account",
    "amount",
    "currency",
)


def _journal(conn: Connection, books: Books, period: Period, progress: Progress) -> Iterator[str]:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")
    out.writerow(JOURNAL_COLUMNS)
    for page in _pages(conn, books, period, progress):
        for m in page:
            fields = m.fields
            facts = [
                m.id,
                _local_time(m.created_ms, books.timezone).isoformat(timespec="milliseconds"),
                m.kind,
                m.client_id,
                m.initiator,
                fields.get("from", ""),
                fields.get("to", ""),
                m.ref_id or "",
                _memo(fields),
            ]
            out.writerows([*facts, leg.account, cents(leg.amount), leg.currency] for leg in m.legs)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


# -- beancount -------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    flat = " ".join(str(text).split())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _beancount(conn: Connection, books: Books, period: Period, progress: Progress) -> Iterator[str]:
    start_ms, end_ms = period.bounds_ms(books.timezone)
    opening = repository.balances_before(conn, start_ms)
    used = repository.accounts_moved(conn, start_ms, end_ms)
    codes = sorted({code for code, _ in used} | {leg.account for leg in opening})
    currency_of = {code: currency for code, currency in used}
    currency_of.update({leg.account: leg.currency for leg in opening})
    names = charts.beancount_names(codes)
    day = period.start.isoformat()
    head = [
        f'option "title" {_quoted(f"Sou ({books.local}) {period.start} – {period.end}")}',
        'option "operating_currency" "EUR"',
        "",
        f'{day} commodity {EUR}\n  name: "Euro"',
        f'{day} commodity {books.local}\n  name: "Unité locale, adossée 1:1 à l\'euro"',
        "",
        *(f"{day} open {names[code]} {currency_of[code]}" for code in codes),
        "",
    ]
    if opening:
        head.append(_txn(day, "Soldes à l'ouverture", {}, opening, names))
    yield "\n".join(head) + "\n"
    for page in _pages(conn, books, period, progress):
        yield "".join(_beancount_txn(m, books, names) for m in page)


def _beancount_txn(m: Movement, books: Books, names: dict[str, str]) -> str:
    day = _local_time(m.created_ms, books.timezone).date().isoformat()
    label = KIND_LABELS.get(m.kind, m.kind)
    memo = _memo(m.fields)
    meta = {"transfer": str(m.id), "kind": m.kind, "client-id": m.client_id}
    if m.ref_id:
        meta["ref"] = str(m.ref_id)
    return _txn(day, f"{label} – {memo}" if memo else label, meta, m.legs, names)


def _txn(
    day: str,
    narration: str,
    meta: dict[str, str],
    legs: Iterable[Leg],
    names: dict[str, str],
) -> str:
    lines = [f"{day} * {_quoted(narration)}"]
    lines += [f"  {key}: {_quoted(value)}" for key, value in meta.items()]
    lines += [
        f"  {names[leg.account]}  {cents(charts.issuer_view(leg.amount, leg.currency))} "
        f"{leg.currency}"
        for leg in legs
    ]
    return "\n".join(lines) + "\n\n"


# -- the FEC (Fichier des écritures comptables, article A47 A-1 of the LPF) ------------------

FEC_COLUMNS = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
)
OPENING_JOURNAL = ("AN", "À-nouveaux")


def fec_lines(legs: list[Leg] | tuple[Leg, ...]) -> list[tuple[charts.PcgAccount, int]]:
    """An entry's lines: the legs in the association's books (units at par with the euro),
    summed per plan comptable account; accounts summing to zero drop out (a payment between
    members moves nothing of the association's)."""
    totals: dict[charts.PcgAccount, int] = {}
    for leg in legs:
        account = charts.pcg_account(leg.account)
        totals[account] = totals.get(account, 0) + charts.issuer_view(leg.amount, leg.currency)
    lines = sorted(
        ((a, v) for a, v in totals.items() if v), key=lambda x: (x[0].number, x[0].aux_number)
    )
    if sum(v for _, v in lines):  # cannot happen: every transfer sums to zero per currency
        raise ValueError("an entry of the FEC does not balance")
    return lines


def _journal_of(lines: list[tuple[charts.PcgAccount, int]]) -> tuple[str, str]:
    numbers = {account.number for account, _ in lines}
    if "531" in numbers:
        return "CA", "Caisse"
    if any(n.startswith("51") for n in numbers):
        return "BQ", "Banque"
    return "OD", "Opérations diverses"


def _fec_text(text: str) -> str:
    # One line per record, fields split by tabs: neither may appear inside a field.
    return " ".join(str(text).split())


def _fec(conn: Connection, books: Books, period: Period, progress: Progress) -> Iterator[str]:
    start_ms, _ = period.bounds_ms(books.timezone)
    number = 0
    out = ["\t".join(FEC_COLUMNS)]
    opening = fec_lines(repository.balances_before(conn, start_ms))
    if opening:
        number += 1
        day = f"{period.start:%Y%m%d}"
        out += _fec_entry(OPENING_JOURNAL, number, day, f"AN{day}", "Soldes à l'ouverture", opening)
    yield "\n".join(out) + "\n"
    for page in _pages(conn, books, period, progress):
        out = []
        for m in page:
            lines = fec_lines(m.legs)
            if not lines:
                continue
            number += 1
            day = f"{_local_time(m.created_ms, books.timezone):%Y%m%d}"
            label = KIND_LABELS.get(m.kind, m.kind)
            fields = m.fields
            parties = " ".join(str(fields[k]) for k in ("from", "to") if k in fields)
            wording = " ".join(p for p in (label, parties, _memo(fields)) if p)
            out += _fec_entry(_journal_of(lines), number, day, f"T{m.id}", wording, lines)
        if out:
            yield "\n".join(out) + "\n"


def _fec_entry(
    journal: tuple[str, str],
    number: int,
    day: str,
    piece: str,
    wording: str,
    lines: list[tuple[charts.PcgAccount, int]],
) -> list[str]:
    return [
        "\t".join(
            [
                *journal,
                str(number),
                day,
                account.number,
                account.label,
                account.aux_number,
                account.aux_label,
                piece,
                day,
                _fec_text(wording)[:200],
                cents(max(amount, 0), ","),
                cents(max(-amount, 0), ","),
                "",
                "",
                day,  # validated when committed: the ledger is append-only
                "",
                "",
            ]
        )
        for account, amount in lines
    ]
