"""A bank statement as French banks' CSV exports look: `;` between fields, a decimal comma,
dates as dd/mm/yyyy, UTF-8 or Windows-1252.

The layout read (docs/treasurer-reconciliation.md): a header line naming the columns —
`Date` (or `Date opération`), `Libellé`, optionally `Date de valeur` and `Référence`, and
either `Débit` and `Crédit` (amounts without sign) or one `Montant` (signed). Lines before
the header (the account's name, the period) and lines without a date after it (balances)
are skipped.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from datetime import date, datetime

from audits.reconciliation import errors
from audits.reconciliation.parsed import ParsedLine, Statement, cents, clip

COLUMNS = {
    "date": ("date", "date operation", "date d'operation", "date comptable"),
    "value": ("date de valeur", "date valeur"),
    "label": ("libelle", "libelle operation", "libelle de l'operation"),
    "reference": ("reference", "ref", "reference banque"),
    "debit": ("debit", "debit euros", "montant debit"),
    "credit": ("credit", "credit euros", "montant credit"),
    "amount": ("montant", "montant euros", "montant (eur)"),
}
EXPECTED = "Date;Libellé;Débit;Crédit or Date;Libellé;Montant"


def _plain(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.strip().lower().replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _columns(row: list[str]) -> dict[str, int] | None:
    plain = [_plain(c) for c in row]
    found = {
        name: plain.index(alias)
        for name, aliases in COLUMNS.items()
        for alias in aliases
        if alias in plain
    }
    has_amount = "amount" in found or ("debit" in found and "credit" in found)
    return found if "date" in found and has_amount else None


def _day(text: str, line: int) -> date:
    for shape in ("%d/%m/%Y", "%Y-%m-%d", "%d/%m/%y", "%d-%m-%Y"):
        try:
            return datetime.strptime(text.strip(), shape).date()
        except ValueError:
            continue
    raise errors.BAD_CSV(line=line, reason=f"{text.strip()!r} is not a date (dd/mm/yyyy)")


def _amount(row: list[str], cols: dict[str, int], line: int) -> int:
    def cell(name: str) -> str:
        index = cols.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    try:
        if "amount" in cols:
            return cents(cell("amount"), decimal_comma=True)
        debit, credit = cell("debit"), cell("credit")
        if bool(debit) == bool(credit):
            raise ValueError("give either a debit or a credit")
        figure = cents(debit or credit, decimal_comma=True)
        return -abs(figure) if debit else abs(figure)
    except ValueError as exc:
        raise errors.BAD_CSV(line=line, reason=str(exc)) from exc


def parse(data: bytes, name: str = "") -> Statement:
    rows = csv.reader(io.StringIO(_decode(data)), delimiter=";")
    cols: dict[str, int] | None = None
    lines: list[ParsedLine] = []
    try:
        for number, row in enumerate(rows, start=1):
            if cols is None:
                cols = _columns(row)
                continue
            if cols["date"] >= len(row) or not row[cols["date"]].strip():
                continue  # a balance, a blank line
            lines.append(_line(row, cols, number))
    except csv.Error as exc:
        raise errors.BAD_CSV(line=rows.line_num, reason=str(exc)) from exc
    if cols is None:
        raise errors.CSV_HEADER(expected=EXPECTED)
    return Statement(lines, name=name or "csv")


def _line(row: list[str], cols: dict[str, int], number: int) -> ParsedLine:
    def cell(key: str) -> str | None:
        index = cols.get(key)
        return clip(row[index]) if index is not None and index < len(row) else None

    amount = _amount(row, cols, number)
    if amount == 0:
        raise errors.BAD_CSV(line=number, reason="the amount is zero")
    value = cell("value")
    return ParsedLine(
        booked=_day(row[cols["date"]], number),
        amount=amount,
        value_date=_day(value, number) if value else None,
        reference=cell("reference"),
        label=cell("label") or "",
    )
