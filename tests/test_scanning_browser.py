"""Scanning in a real headless Chromium whose camera films a QR code (tests/fake_camera.py):
the /scan page reads it with the vendored zxing-wasm on the device; with that decoder
blocked it reads it through the node (`POST /api/v1/qr/decode`); a link of the node opens;
a code nobody can read is typed instead. SQLite and PostgreSQL, in French.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import Page, Route, expect

from pos.scanning import DECODE_URL
from tests.conftest import PASSWORD
from tests.people import join
from web.i18n import translations
from web.qr import qr_png

# What these tests check does not depend on the database.
pytestmark = pytest.mark.one_database

FR = translations("fr")
SHORT_CODE = "SOU-7K2Q-9XM4"


pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `filming`


@pytest.fixture
def scanning(filming: Callable[[bytes], Page], village: TestClient) -> Callable[..., Page]:
    """A shopkeeper's phone on /scan whose camera films a picture (one Chromium per picture:
    its camera is fixed at launch); `before` is done to the page first, so that its routes
    and listeners are in place before the camera starts."""

    def opened(picture: bytes, *, before: Callable[[Page], None] | None = None) -> Page:
        page = filming(picture)
        if before is not None:
            before(page)
        shopkeeper = join(village, "Zoé", role="merchant", key=False)
        page.goto("/scan")  # the login page first, then back
        page.fill("#email", shopkeeper.member["email"])
        page.fill("#password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/scan")
        return page

    return opened


def french(msgid: str) -> str:
    text = FR.gettext(msgid)
    assert text != msgid, f"no French for {msgid!r}"
    return text


def nothing_found_by_the_node(route: Route) -> None:
    body = {"error": "no_code_found", "message": "No QR code was found in this picture."}
    route.fulfill(status=422, content_type="application/json", body=json.dumps(body))


def test_the_camera_reads_a_code_on_the_device(scanning: Callable[..., Page]) -> None:
    # The node finds nothing, whatever it is sent: what is read, the device read.
    page = scanning(
        qr_png(SHORT_CODE), before=lambda p: p.route(f"**{DECODE_URL}", nothing_found_by_the_node)
    )
    expect(page.locator("#scan-text")).to_have_text(SHORT_CODE)
    expect(page.locator("#scan-result")).to_have_attribute("data-via", "device")
    expect(page.locator("#scan-status")).to_have_text(french("Short code read."))
    expect(page.locator("#scan-video")).to_be_hidden()
    # The camera is released once the code is read.
    tracks = page.evaluate("document.getElementById('scan-video').srcObject")
    assert tracks is None


def test_without_the_vendored_decoder_the_node_reads_the_frame(
    scanning: Callable[..., Page],
) -> None:
    link = "https://ailleurs.example.org/adhesion?ref=affiche-2026"
    statuses: list[int] = []

    def without_the_decoder(page: Page) -> None:
        page.route("**/static/vendor/**", lambda route: route.abort())
        page.on("response", lambda r: statuses.append(r.status) if DECODE_URL in r.url else None)

    page = scanning(qr_png(link), before=without_the_decoder)
    expect(page.locator("#scan-text")).to_have_text(link)
    expect(page.locator("#scan-result")).to_have_attribute("data-via", "server")
    assert 200 in statuses
    # Another site's link is shown, never opened.
    expect(page.locator("#scan-status")).to_have_text(
        french("This code does not lead to this node: it is not opened.")
    )
    assert page.url.endswith("/scan")


def test_a_link_of_the_node_opens(scanning: Callable[..., Page], live_site: str) -> None:
    page = scanning(qr_png(f"{live_site}/?depuis=scan"))
    page.wait_for_url(f"{live_site}/?depuis=scan")


def test_a_code_nobody_reads_is_typed(scanning: Callable[..., Page]) -> None:
    page = scanning(blank_picture())
    expect(page.locator("#scan-status")).to_have_text(french("Point the camera at the code."))
    # Nothing to read on the device; after a while the node is asked, and finds nothing too,
    # which is no error to show.
    asked = page.wait_for_event("response", lambda r: DECODE_URL in r.url)
    assert asked.status == 422
    expect(page.locator("#scan-status")).not_to_have_class(re.compile("error"))
    page.fill("#scan-code", "not a code!")
    page.click("#scan-typed button[type=submit]")
    expect(page.locator("#scan-status")).to_have_text(
        french("Type a short code (letters, digits and dashes) or a whole link.")
    )
    page.fill("#scan-code", " sou-7k2q 9xm4 ")
    page.click("#scan-typed button[type=submit]")
    expect(page.locator("#scan-text")).to_have_text("sou-7k2q 9xm4")
    expect(page.locator("#scan-result")).to_have_attribute("data-via", "typed")
    expect(page.locator("#scan-status")).to_have_text(french("Short code read."))


def blank_picture() -> bytes:
    """A counter seen by the camera with no code on it."""
    out = io.BytesIO()
    Image.linear_gradient("L").resize((320, 320)).save(out, "PNG")
    return out.getvalue()
