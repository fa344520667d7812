"""Sheets to print or open in a spreadsheet: the distribution sheet (who takes what, with a
box to tick), the producer's statement, the member's baskets. CSV and PDF (fpdf2)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from fpdf import FPDF
from fpdf.enums import XPos, YPos

Cell = str | int


def as_csv(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")  # what a French spreadsheet opens as columns
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def as_pdf(
    title: str,
    subtitle: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    tick: bool = False,
) -> bytes:
    """An A4 table; with `tick`, a box to tick at the start of each row."""
    sheet = FPDF(format="A4")
    sheet.set_title(_latin(title))
    sheet.add_page()
    sheet.set_font("helvetica", "B", 14)
    width = sheet.w - 2 * sheet.l_margin
    # Each heading starts back at the left margin (fpdf2 leaves x at the right by default).
    sheet.multi_cell(width, 8, _latin(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    sheet.set_font("helvetica", "", 10)
    sheet.multi_cell(width, 6, _latin(subtitle), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    sheet.ln(2)
    box = 8.0 if tick else 0.0
    column = (width - box) / max(len(header), 1)
    sheet.set_font("helvetica", "B", 10)
    if tick:
        sheet.cell(box, 7, "", border=1)
    for name in header:
        sheet.cell(column, 7, _latin(name), border=1)
    sheet.ln()
    sheet.set_font("helvetica", "", 10)
    for row in rows:
        if tick:
            sheet.cell(box, 7, "", border=1)  # the box to tick
        for value in row:
            sheet.cell(column, 7, _fitted(sheet, _latin(str(value)), column - 2), border=1)
        sheet.ln()
    return bytes(sheet.output())


def _fitted(sheet: FPDF, text: str, width: float) -> str:
    """The text cut (with an ellipsis) to the cell's width: a long name never runs into the
    next column."""
    if sheet.get_string_width(text) <= width:
        return text
    while text and sheet.get_string_width(text + "...") > width:
        text = text[:-1]
    return text + "..."


_FRENCH = str.maketrans({"œ": "oe", "Œ": "OE", "’": "'", "€": "EUR", "…": "...", "\u202f": " "})


def _latin(text: str) -> str:
    """The core fonts write Latin-1: French nearly is; anything else becomes '?'."""
    return text.translate(_FRENCH).encode("latin-1", "replace").decode("latin-1")
