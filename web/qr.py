"""QR code images of the links the node makes (PNG for screens and print, SVG for pages).

Error correction M (15 %): a code stays readable on a scratched sticker or a creased note,
and a link of ~200 characters still fits a code a cheap phone camera reads at arm's length.
"""

from __future__ import annotations

import io

import qrcode
import qrcode.constants
import qrcode.image.svg

QUIET_ZONE = 4  # modules of white border: what the standard asks, and readers need


def _code(text: str) -> qrcode.QRCode:
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=QUIET_ZONE
    )
    code.add_data(text)
    code.make(fit=True)
    return code


def qr_png(text: str, *, box_size: int = 8) -> bytes:
    """A PNG of the code, `box_size` pixels per module."""
    code = _code(text)
    code.box_size = box_size
    out = io.BytesIO()
    code.make_image().save(out)
    return out.getvalue()


def qr_svg(text: str) -> str:
    """An SVG of the code as one path, scaled by its viewBox to whatever box holds it."""
    image = _code(text).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return str(image.to_string(encoding="unicode"))
