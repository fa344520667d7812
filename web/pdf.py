"""The PDF documents the node prints (fpdf2) write in DejaVu Sans, shipped with the node
(web/fonts, its licence beside it): the core PDF fonts know only Latin-1, where French
loses its œ, its narrow spaces and the euro sign, and other alphabets their letters."""

from __future__ import annotations

from importlib.resources import as_file, files
from typing import Any

from fpdf import FPDF

FONT = "dejavu"


def new_pdf(**options: Any) -> FPDF:
    """An fpdf2 document with the node's font registered (regular and bold) under FONT."""
    sheet = FPDF(**options)
    folder = files("web") / "fonts"
    for style, name in (("", "DejaVuSans.ttf"), ("B", "DejaVuSans-Bold.ttf")):
        with as_file(folder / name) as path:
            sheet.add_font(FONT, style, str(path))
    return sheet
