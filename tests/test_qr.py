"""The QR codes the node draws (web/qr.py): every PNG and SVG reads back with zxing-cpp to
exactly its text, with error correction M, whatever the text (the mask is fixed, so
every text the node may put in a code is tried)."""

from __future__ import annotations

import io
import re
from xml.etree import ElementTree

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from web.qr import QUIET_ZONE, modules, qr_png, qr_svg

SVG = "{http://www.w3.org/2000/svg}"
# What the node puts in its codes: an invoice, a counter sticker, a paper note, a pairing
# code, a customer's short code; and a text in no QR alphabet but bytes.
LINKS = [
    "https://sou.example.org/pay?i=Qw3rTy-Uiop_As9f&m=boulangerie-du-lavoir&a=1250&e=1764756000"
    "&s=" + "k" * 86,
    "https://sou.example.org/pay?m=cafe-de-la-place&s=" + "Z9" * 43,
    "https://sou.example.org/n/A/000123?v=20&s=" + "-_" * 43,
    "http://127.0.0.1:8000/pos/pair?code=K7QX-2M9P",
    "SOU-7K2Q-9XM4",
    "Épicerie « Chez Zoé » · 12,50 €",
]


def read(png: bytes) -> list[zxingcpp.Barcode]:
    """The QR codes in a picture, as the counter's scanners look for them (QR codes only:
    among some codes' modules zxing also finds a stray one-dimensional barcode)."""
    image = Image.open(io.BytesIO(png))
    return list(zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode))


def raster(svg: str, scale: int = 6) -> bytes:
    """The SVG as a browser paints it, for the path shapes qr_svg draws: a PNG."""
    root = ElementTree.fromstring(svg)
    box = re.fullmatch(r"0 0 (\d+) \1", root.attrib["viewBox"])
    assert box is not None
    side = int(box[1])
    background = root.find(f"{SVG}rect")
    assert background is not None and background.attrib["fill"] == "#fff"
    path = root.find(f"{SVG}path")
    assert path is not None and path.attrib["fill"] == "#000"
    image = Image.new("L", (side * scale, side * scale), 255)
    draw = ImageDraw.Draw(image)
    shapes = re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", path.attrib["d"])
    assert "".join(f"M{x} {y}h{w}v1h-{w}z" for x, y, w in shapes) == path.attrib["d"]
    for x, y, width in ((int(x), int(y), int(w)) for x, y, w in shapes):
        draw.rectangle((x * scale, y * scale, (x + width) * scale - 1, (y + 1) * scale - 1), fill=0)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("text", LINKS)
def test_every_code_reads_back_to_its_text_as_png_and_as_svg(text: str) -> None:
    for box_size in (4, 8, 10):  # a camera frame, the screens and notes, the sticker
        [found] = read(qr_png(text, box_size=box_size))
        assert (found.text, found.format, found.ec_level) == (
            text,
            zxingcpp.BarcodeFormat.QRCode,
            "M",
        )
    [found] = read(raster(qr_svg(text)))
    assert found.text == text


def test_the_svg_scales_to_its_box_with_a_quiet_zone() -> None:
    svg = qr_svg(LINKS[0])
    root = ElementTree.fromstring(svg)
    assert "width" not in root.attrib and "height" not in root.attrib  # the <img> sizes it
    side = len(modules(LINKS[0])) + 2 * QUIET_ZONE
    assert root.attrib["viewBox"] == f"0 0 {side} {side}"
    path = root.find(f"{SVG}path")
    assert path is not None
    # The top left finder pattern starts after 4 modules of white on both sides.
    assert path.attrib["d"].startswith(f"M{QUIET_ZONE} {QUIET_ZONE}h7v1h-7z")


def test_the_png_has_the_quiet_zone_and_the_size_asked() -> None:
    image = Image.open(io.BytesIO(qr_png(LINKS[1], box_size=8)))
    side = (len(modules(LINKS[1])) + 2 * QUIET_ZONE) * 8
    assert image.size == (side, side) and image.mode == "1"
    border = QUIET_ZONE * 8
    assert image.crop((0, 0, side, border)).getextrema() == (255, 255)
    assert image.crop((0, 0, border, side)).getextrema() == (255, 255)
    assert image.getpixel((border, border)) == 0  # the finder pattern's corner


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cc",)), min_size=1, max_size=300),
        st.from_regex(
            r"https://[a-z.]{4,30}/pay\?i=[A-Za-z0-9_-]{16}&a=[0-9]{1,9}&s=[A-Za-z0-9_-]{86}",
            fullmatch=True,
        ),
    )
)
def test_any_text_reads_back_from_its_png_and_its_svg(text: str) -> None:
    [found] = read(qr_png(text, box_size=4))
    assert (found.text, found.ec_level) == (text, "M")
    [found] = read(raster(qr_svg(text), scale=4))
    assert found.text == text
