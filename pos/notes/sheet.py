"""Print-ready sheets of notes: A4 pages of eight notes (two columns of four), each with its
QR code, value, series and serial, the village and the currency, and cut marks between them.

The core PDF fonts write Latin-1, which French is; the QR code is embedded as the PNG the
node makes for every code (`web.qr.qr_png`), so that it decodes as the screens' do.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fpdf import FPDF

from web.pdf import FONT, new_pdf
from web.qr import qr_png

PAGE_W, PAGE_H = 210.0, 297.0  # A4, millimetres
MARGIN = 10.0  # what most printers cannot print on
COLUMNS, ROWS = 2, 4
NOTE_W = (PAGE_W - 2 * MARGIN) / COLUMNS  # 95 mm
NOTE_H = (PAGE_H - 2 * MARGIN) / ROWS  # 69.25 mm
PAD = 5.0
QR_SIDE = 40.0
MARK = 4.0  # length of a cut mark


@dataclass(frozen=True)
class PrintedNote:
    series: str
    serial: int
    denomination: int  # cents
    link: str


def note_png(link: str) -> bytes:
    """The QR code printed on a note: 8 pixels a module, sharp at 300 dpi on 40 mm."""
    return qr_png(link, box_size=8)


def sheet_pdf(
    notes: Sequence[PrintedNote],
    *,
    village: str,
    currency: str,
    valid_until: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> bytes:
    """The PDF of the notes, eight to an A4 page; `progress(done)` after each note."""
    pdf = new_pdf(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(f"{currency} - {village}")
    pdf.set_creator("Sou")
    per_page = COLUMNS * ROWS
    for index, note in enumerate(notes):
        if index % per_page == 0:
            pdf.add_page()
            _cut_marks(pdf)
        place = index % per_page
        x = MARGIN + (place % COLUMNS) * NOTE_W
        y = MARGIN + (place // COLUMNS) * NOTE_H
        _note(pdf, x, y, note, village=village, currency=currency, valid_until=valid_until)
        if progress is not None:
            progress(index + 1)
    return bytes(pdf.output())


def _note(
    pdf: FPDF,
    x: float,
    y: float,
    note: PrintedNote,
    *,
    village: str,
    currency: str,
    valid_until: str | None,
) -> None:
    pdf.set_draw_color(150, 150, 150)
    pdf.set_line_width(0.2)
    pdf.rect(x + 2, y + 2, NOTE_W - 4, NOTE_H - 4)  # the note's frame, inside the cut
    left, top = x + PAD, y + PAD
    text_w = NOTE_W - 2 * PAD - QR_SIDE - 2
    pdf.set_text_color(0, 0, 0)
    _fit(pdf, village, text_w, 11)
    pdf.set_xy(left, top)
    pdf.cell(text_w, 5, village, align="L")
    pdf.set_font(FONT, "", 7)
    pdf.set_xy(left, top + 5.5)
    pdf.cell(text_w, 3.5, "Monnaie locale complémentaire", align="L")
    units = note.denomination // 100
    pdf.set_font(FONT, "B", 34)
    pdf.set_xy(left, top + 17)
    pdf.cell(text_w, 14, str(units), align="L")
    pdf.set_font(FONT, "B", 13)
    pdf.set_xy(left, top + 31)
    pdf.cell(text_w, 6, currency, align="L")
    pdf.set_font(FONT, "", 9)
    pdf.set_xy(left, y + NOTE_H - PAD - 14)
    pdf.cell(text_w, 4.5, f"Série {note.series} · N° {note.serial:05d}", align="L")
    pdf.set_font(FONT, "", 6.5)
    pdf.set_xy(left, y + NOTE_H - PAD - 9)
    said = "Scannez le code pour vérifier ce billet."
    if valid_until:
        said += f" Valable jusqu'au {valid_until}."
    pdf.multi_cell(text_w, 3, said, align="L")
    qr_x = x + NOTE_W - PAD - QR_SIDE
    qr_y = y + (NOTE_H - QR_SIDE) / 2
    pdf.image(io.BytesIO(note_png(note.link)), x=qr_x, y=qr_y, w=QR_SIDE, h=QR_SIDE)


def _fit(pdf: FPDF, text: str, width: float, size: float) -> None:
    """Set a bold font as large as `size` in which `text` holds on one line of `width`."""
    pdf.set_font(FONT, "B", size)
    while size > 6 and pdf.get_string_width(text) > width:
        size -= 0.5
        pdf.set_font(FONT, "B", size)


def _cut_marks(pdf: FPDF) -> None:
    """Short lines where the guillotine goes: at every corner of the notes' grid, outside
    the notes (in the margin and the gutters), so that no mark shows on a note."""
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.25)
    xs = [MARGIN + i * NOTE_W for i in range(COLUMNS + 1)]
    ys = [MARGIN + j * NOTE_H for j in range(ROWS + 1)]
    for x in xs:  # vertical cuts: marks above and below the grid
        pdf.line(x, MARGIN - MARK - 1, x, MARGIN - 1)
        pdf.line(x, PAGE_H - MARGIN + 1, x, PAGE_H - MARGIN + MARK + 1)
    for y in ys:  # horizontal cuts: marks left and right of the grid
        pdf.line(MARGIN - MARK - 1, y, MARGIN - 1, y)
        pdf.line(PAGE_W - MARGIN + 1, y, PAGE_W - MARGIN + MARK + 1, y)
