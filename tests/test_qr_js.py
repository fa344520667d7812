"""QR codes drawn on the device (web/static/qr.js, `SouQR`, over the vendored zxing-wasm
writer) in a real headless Chromium: a page of the node that loads qr.js under the
Content-Security-Policy the pages will get draws the code of a ~400-character link, goes
offline, draws another, and both images read back (zxing-cpp) to exactly their texts, with
error correction M. SQLite and PostgreSQL (the live node's fixtures).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from playwright.sync_api import Page, Request, Route

from tests.test_qr import read as read_qr

# Fixtures: `chromium` and `open_browser` (a phone's context on the live node).
pytest_plugins = ["tests.browser"]

VENDOR = Path(__file__).resolve().parents[1] / "web" / "static" / "vendor" / "zxing-wasm"
TEST_PAGE = "/test-only/qr"  # no route of the node: Playwright serves it on the node's origin
# What the pages will be served with: no inline script, the .wasm may compile, codes are
# data: images.
POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "img-src 'self' data: blob:; style-src 'self'"
)
# The reader first, as a page that scans and draws would have it: qr.js must leave the
# reader's global alone.
HTML = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>QR</title>
<script src="/static/vendor/zxing-wasm/zxing_reader.js"></script>
<script src="/static/qr.js"></script>
</head><body>
<img id="online" width="320" height="320" alt="">
<img id="offline" width="320" height="320" alt="">
</body></html>"""
SHOW = "([id, text]) => SouQR.show(document.getElementById(id), text)"
# Reaching the node: "reached" online, "unreachable" offline (no cache to answer instead).
PROBE = (
    "fetch('/static/qr.js?probe', {cache: 'no-store'}).then(() => 'reached', () => 'unreachable')"
)

# What these tests check does not depend on the database.
pytestmark = pytest.mark.one_database


def authorisation_link(amount_cents: int, nonce: str) -> str:
    """A link the size of a signed payment authorisation (~400 characters)."""
    signature = hashlib.sha512(f"{amount_cents}:{nonce}".encode()).hexdigest()
    key = hashlib.sha256(nonce.encode()).hexdigest()
    return (
        "https://sou.village.test/pay/authorisation?v=1"
        f"&payer=3f6c2a9e-8b1d-4e7a-9c55-0d2b7e4f1a60&payee=shop-boulangerie-du-lavoir"
        f"&amount={amount_cents}&currency=SOU&expires=2026-05-01T18:30:00Z"
        f"&memo=pain-de-campagne&nonce={nonce}&key={key}&sig={signature}"
    )


FIRST = authorisation_link(1250, "7K2Q9XM4A8")
SECOND = authorisation_link(380, "P3RT6WZ1B5")


def read_back(png: bytes) -> Any:
    """The one QR code zxing-cpp finds in a screenshot."""
    found = read_qr(png)
    assert len(found) == 1, found
    return found[0]


def serve_test_page(route: Route) -> None:
    route.fulfill(
        status=200,
        content_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": POLICY},
        body=HTML,
    )


def test_codes_are_drawn_on_the_device_and_still_drawn_offline(
    open_browser: Callable[..., Page], live_site: str
) -> None:
    assert 380 <= len(FIRST) <= 420 and 380 <= len(SECOND) <= 420
    page = open_browser()
    page.route(f"{live_site}{TEST_PAGE}", serve_test_page)
    requests: list[str] = []

    def asked(request: Request) -> None:
        if request.url.startswith("http") and "?probe" not in request.url:
            requests.append(request.url)

    page.on("request", asked)
    page.goto(TEST_PAGE)

    page.evaluate("SouQR.ready()")
    # Ready: the writer and its .wasm were fetched from the node, once, and are kept.
    assert [url for url in requests if "/zxing_writer." in url] == [
        f"{live_site}/static/vendor/zxing-wasm/zxing_writer.js",
        f"{live_site}/static/vendor/zxing-wasm/zxing_writer.wasm",
    ]
    asked_before_drawing = len(requests)
    page.evaluate(SHOW, ["online", FIRST])
    page.context.set_offline(True)
    assert page.evaluate(PROBE) == "unreachable"
    page.evaluate(SHOW, ["offline", SECOND])
    drawn = page.evaluate("(text) => SouQR.svg(text)", SECOND)
    assert len(requests) == asked_before_drawing  # drawing asks nothing of the network

    for image_id, text in (("online", FIRST), ("offline", SECOND)):
        image = page.locator(f"#{image_id}")
        assert (image.get_attribute("src") or "").startswith("data:image/svg+xml")
        code = read_back(image.screenshot())
        assert code.text == text
        assert code.format == zxingcpp.BarcodeFormat.QRCode
        assert code.ec_level == "M"
    assert_scalable_with_a_quiet_zone(drawn)
    # The reader's global is still the reader's: a page may scan and draw.
    assert page.evaluate("typeof ZXingWASM.readBarcodes") == "function"


def assert_scalable_with_a_quiet_zone(svg: str) -> None:
    root = ElementTree.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "width" not in root.attrib and "height" not in root.attrib  # the box sizes it
    side = re.fullmatch(r"0 0 (\d+) \1", root.attrib["viewBox"])
    assert side is not None, root.attrib["viewBox"]
    modules = int(side[1]) - 2 * 4
    assert modules >= 21 and (modules - 17) % 4 == 0  # a QR code's side: 17 + 4 × version
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    # The top left finder pattern starts after 4 modules of white on both sides.
    assert path.attrib["d"].startswith("M4 4h7v1h-7z")


def test_the_vendored_writer_is_served_as_listed(site: TestClient) -> None:
    readme = (VENDOR / "README.md").read_text()
    for name in ("zxing_writer.js", "zxing_writer.wasm"):
        served = site.get(f"/static/vendor/zxing-wasm/{name}")
        assert served.status_code == 200
        # The README lists what is here, and where it came from.
        row = re.search(rf"^\| `{name}` \| `dist/[^`]+` .*\| ([0-9a-f]{{64}}) \|$", readme, re.M)
        assert row is not None, name
        assert hashlib.sha256(served.content).hexdigest() == row[1]
    wasm = site.get("/static/vendor/zxing-wasm/zxing_writer.wasm")
    assert wasm.headers["content-type"] == "application/wasm"  # streaming compile needs it
    script = site.get("/static/vendor/zxing-wasm/zxing_writer.js").text
    # The script names the .wasm it was built with, and the release the reader is from.
    assert hashlib.sha256(wasm.content).hexdigest() in script
    version = re.search(r"ZXING_WASM_VERSION=(\w+)", script)
    assert version is not None
    assert re.search(rf"\b{version[1]}=`3\.1\.6`", script)
    assert "BSD" in (VENDOR / "LICENSE.zint").read_text()
