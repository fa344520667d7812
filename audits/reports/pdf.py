"""The general assembly's report as an A4 PDF (fpdf2): the same charts as the dashboard,
embedded as the SVG the node drew, and the same tables.

The text is written in the node's own font (web.pdf), whatever the language; the charts'
few words (month names, figures) are drawn by fpdf2's SVG reader in a core font, so in
Latin-1.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from audits.reports import charts
from audits.reports.sections import ReportText, Section
from web.pdf import FONT, new_pdf

_FRENCH = str.maketrans(
    {"œ": "oe", "Œ": "OE", "’": "'", "€": "EUR", "…": "...", "\u202f": " ", "\u00a0": " "}
)


def latin(text: str) -> str:
    return text.translate(_FRENCH).encode("latin-1", "replace").decode("latin-1")


def _for_pdf(svg: str) -> bytes:
    """The chart as fpdf2 reads it: Latin-1, as the core font writes, said in its XML
    declaration; without the screen readers' <title> and <desc> (the page's text says them)."""
    bare = _SPOKEN.sub("", svg)
    return (_DECLARATION + latin(bare)).encode("latin-1")


_DECLARATION = '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
_SPOKEN = re.compile(r"<(title|desc)\b[^>]*>.*?</\1>", re.DOTALL)

CHART_MM = 150  # a chart's width on the page: big enough to read, small enough to keep company

Progress = Callable[[int, int], None]


def as_pdf(text: ReportText, progress: Progress | None = None) -> bytes:
    """The whole report; `progress(done, total)` after each section (a long one takes a while)."""
    sheet = new_pdf(format="A4")
    sheet.set_title(text.title)
    sheet.set_creator("Sou")
    sheet.add_page()
    width = sheet.w - sheet.l_margin - sheet.r_margin
    sheet.set_font(FONT, "B", 16)
    sheet.multi_cell(width, 8, text.title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    sheet.set_font(FONT, "", 10)
    for line in text.intro:
        sheet.multi_cell(width, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    total = len(text.sections)
    chart = min(width, CHART_MM)
    for done, section in enumerate(text.sections, start=1):
        if sheet.get_y() + _height(section, chart) > sheet.h - sheet.b_margin:
            sheet.add_page()  # a section's heading, lines and chart stay on one page
        sheet.ln(3)
        sheet.set_font(FONT, "B", 12)
        sheet.multi_cell(width, 7, section.heading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        sheet.set_font(FONT, "", 9)
        for line in section.notes:
            sheet.multi_cell(width, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if section.svg:
            # The chart's words in Latin-1: fpdf2 draws an SVG's text with a core font.
            sheet.image(io.BytesIO(_for_pdf(section.svg)), x=sheet.l_margin, w=chart)
        _table(sheet, width, section.header, section.rows)
        if progress is not None:
            progress(done, total)
    return bytes(sheet.output())


def _height(section: Section, chart: float) -> float:
    """About how tall a section's heading, lines, chart and first rows are (mm)."""
    drawn = chart * charts.HEIGHT / charts.WIDTH if section.svg else 0
    return 10 + 10 * len(section.notes) + drawn + 6 * min(len(section.rows) + 1, 4)


def _table(sheet: FPDF, width: float, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not header:
        return
    column = width / len(header)
    sheet.set_font(FONT, "B", 8)
    for name in header:
        sheet.cell(column, 6, name[:34], border=1)
    sheet.ln()
    sheet.set_font(FONT, "", 8)
    for row in rows:
        if sheet.get_y() > sheet.h - 20:
            sheet.add_page()
        for i, value in enumerate(row):
            sheet.cell(column, 5, value[:34], border=1, align="L" if i == 0 else "R")
        sheet.ln()
