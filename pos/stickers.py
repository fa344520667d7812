"""A shop's counter sticker: its signed link as a QR code, with the trade name, to print
(PDF, A6 — a quarter of an A4 sheet) or to show on a screen (PNG)."""

from __future__ import annotations

import io

from fpdf import FPDF

from members.shops import Shop
from web.qr import qr_png


def png(link: str) -> bytes:
    return qr_png(link, box_size=10)


def pdf(link: str, shop: Shop, village: str, currency: str) -> bytes:
    """One A6 page: who is paid, the code, and how to pay, in French (the sticker is read
    at a French counter; the pay page it opens speaks the customer's language)."""
    sheet = FPDF(format=(105, 148))  # A6, in millimetres
    sheet.set_auto_page_break(False)
    sheet.set_title(f"{shop.trade_name} - {currency}")
    sheet.add_page()
    width = sheet.w - 2 * sheet.l_margin
    sheet.set_font("helvetica", "B", 16)
    sheet.multi_cell(width, 8, _latin(shop.trade_name), align="C")
    sheet.set_font("helvetica", "", 10)
    if shop.place:
        sheet.multi_cell(width, 5, _latin(shop.place), align="C")
    side = 70.0
    top = sheet.get_y() + 3
    sheet.image(io.BytesIO(png(link)), x=(sheet.w - side) / 2, y=top, w=side, h=side)
    sheet.set_y(top + side + 3)
    sheet.set_font("helvetica", "B", 12)
    sheet.multi_cell(width, 6, _latin(f"Payez en {currency}"), align="C")
    sheet.set_font("helvetica", "", 9)
    sheet.multi_cell(
        width,
        4.5,
        _latin(
            "Scannez ce code avec l'appareil photo de votre téléphone, tapez le montant, "
            f"confirmez. Monnaie locale de {village}."
        ),
        align="C",
    )
    return bytes(sheet.output())


# What the core fonts (Latin-1) lack but French writes.
_FRENCH = str.maketrans({"œ": "oe", "Œ": "OE", "’": "'", "€": "EUR", "…": "...", "\u202f": " "})


def _latin(text: str) -> str:
    """The PDF's core fonts write Latin-1: French is, nearly; anything else becomes '?'."""
    return text.translate(_FRENCH).encode("latin-1", "replace").decode("latin-1")
