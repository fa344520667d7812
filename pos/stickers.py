"""A shop's counter sticker: its signed link as a QR code, with the trade name, to print
(PDF, A6 — a quarter of an A4 sheet) or to show on a screen (PNG)."""

from __future__ import annotations

import io

from members.shops import Shop
from web.pdf import FONT, new_pdf
from web.qr import qr_png


def png(link: str) -> bytes:
    return qr_png(link, box_size=10)


def pdf(link: str, shop: Shop, village: str, currency: str) -> bytes:
    """One A6 page: who is paid, the code, and how to pay, in French (the sticker is read
    at a French counter; the pay page it opens speaks the customer's language)."""
    sheet = new_pdf(format=(105, 148))  # A6, in millimetres
    sheet.set_auto_page_break(False)
    sheet.set_title(f"{shop.trade_name} - {currency}")
    sheet.add_page()
    width = sheet.w - 2 * sheet.l_margin
    sheet.set_font(FONT, "B", 16)
    sheet.multi_cell(width, 8, shop.trade_name, align="C")
    sheet.set_font(FONT, "", 10)
    if shop.place:
        sheet.multi_cell(width, 5, shop.place, align="C")
    side = 70.0
    top = sheet.get_y() + 3
    sheet.image(io.BytesIO(png(link)), x=(sheet.w - side) / 2, y=top, w=side, h=side)
    sheet.set_y(top + side + 3)
    sheet.set_font(FONT, "B", 12)
    sheet.multi_cell(width, 6, f"Payez en {currency}", align="C")
    sheet.set_font(FONT, "", 9)
    sheet.multi_cell(
        width,
        4.5,
        "Scannez ce code avec l'appareil photo de votre téléphone, tapez le montant, "
        f"confirmez. Monnaie locale de {village}.",
        align="C",
    )
    return bytes(sheet.output())
