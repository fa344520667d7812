"""QR code images of the links the node makes (PNG for screens and print, SVG for pages).

Error correction M (15 %): a code stays readable on a scratched sticker or a creased note,
and a link of ~200 characters still fits a code a cheap phone camera reads at arm's length.

The mask is fixed. Every reader reads any of the eight (the symbol says which); choosing
"the best" lays the symbol out eight times and scores each, which made drawing a code at
the counter cost ten times as much, for a choice that only matters to damaged prints of
rare patterns. The tests read every kind of code the node draws back with zxing-cpp.
"""

from __future__ import annotations

import base64
import io
import re

import segno
from PIL import Image

QUIET_ZONE = 4  # modules of white border: what the standard asks, and readers need
ERROR_CORRECTION = "M"
MASK = 2
_DARK_RUNS = re.compile("1+")


def qr_png(text: str, *, box_size: int = 8) -> bytes:
    """A PNG of the code, `box_size` pixels per module (black and white, one bit a pixel)."""
    rows = modules(text)
    side = len(rows) + 2 * QUIET_ZONE
    width = -(-side // 8) * 8  # PIL's one-bit rows end on a whole byte
    light = str.maketrans("01", "10")  # a one-bit image's 1 is white
    margin = "0" * QUIET_ZONE
    blank = int("1" * side + "0" * (width - side), 2).to_bytes(width // 8, "big")
    lines = [blank] * QUIET_ZONE
    for row in rows:
        line = (margin + row + margin).translate(light) + "0" * (width - side)
        lines.append(int(line, 2).to_bytes(width // 8, "big"))
    lines += [blank] * QUIET_ZONE
    image = Image.frombytes("1", (side, side), b"".join(lines))
    image = image.resize((side * box_size, side * box_size), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def qr_svg(text: str) -> str:
    """An SVG of the code as one path, scaled by its viewBox to whatever box holds it (the
    shape qr.js draws on the devices: a white square, a rectangle per run of dark modules)."""
    rows = modules(text)
    side = len(rows) + 2 * QUIET_ZONE
    path = "".join(
        f"M{run.start() + QUIET_ZONE} {y + QUIET_ZONE}h{len(run[0])}v1h-{len(run[0])}z"
        for y, row in enumerate(rows)
        for run in _DARK_RUNS.finditer(row)
    )
    # crispEdges: no grey seams between the runs however the image is scaled.
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" '
        f'shape-rendering="crispEdges"><rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{path}"/></svg>'
    )


def modules(text: str) -> list[str]:
    """The symbol of `text` without its quiet zone: one string a row, "1" a dark module."""
    # The smallest version that holds it, at level M even where a higher level would fit;
    # text as UTF-8 (what phones guess), not as the standard's Latin-1 default.
    code = segno.make_qr(
        text, error=ERROR_CORRECTION, mask=MASK, boost_error=False, encoding="utf-8"
    )
    return ["".join("1" if dark else "0" for dark in row) for row in code.matrix]


def qr_data_url(text: str) -> str:
    """A QR code of `text` to put in an <img src> (SVG; the pages' policy allows data:)."""
    return "data:image/svg+xml;base64," + base64.b64encode(qr_svg(text).encode()).decode()
