"""A real browser for the pages' tests: Debian's Chromium driven by Playwright.

Chromium is the system's (`apt-get install chromium`), not a Playwright download: the
machines that run the suite have no internet. Without it the browser tests are skipped
with a message saying how to install it, except in CI (CI=true), where that is a failure.
Each test gets a fresh browser context (its own cookies and IndexedDB, so its own device
keys) with a phone's viewport, on a node served for real by uvicorn (`live_site`):
WebCrypto Ed25519 needs a secure context, which http://127.0.0.1 is. The tests of sou.js's
pure helpers share one blank page per module (`sou_js`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
# No network beyond the node: no QUIC, no background updates or sync.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 360, "height": 740}
WAIT_MS = 20_000  # how long a page may take to show what a test waits for


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium, headless, for the tests of one module (one browser, many contexts)."""
    if not CHROMIUM.exists():
        message = (
            f"Chromium is not installed ({CHROMIUM} is missing), so the browser tests cannot "
            "run. Install Debian's package: sudo apt-get install -y chromium"
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _watched(context: Any, live_site: str, errors: list[str], elsewhere: list[str]) -> Any:
    """A new page of `context` whose script errors are recorded in `errors`; every asset
    comes from the node: a request anywhere else is recorded in `elsewhere` and refused."""

    def refuse_elsewhere(route: Any) -> None:
        elsewhere.append(route.request.url)
        route.abort()

    context.set_default_timeout(WAIT_MS)
    # A pattern the browser matches itself: a Python predicate would make every request
    # of the node's own pages wait for this process to let it through.
    context.route(re.compile(f"^(?!{re.escape(live_site)}/)"), refuse_elsewhere)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


@pytest.fixture
def open_browser(chromium: Any, live_site: str) -> Iterator[Callable[..., Any]]:
    """Open a new browser (context and page) on the live node, as a phone would: French
    unless told otherwise. Every page's script error fails the test."""
    contexts: list[Any] = []
    errors: list[str] = []
    elsewhere: list[str] = []

    def opened(locale: str = "fr-FR") -> Any:
        context = chromium.new_context(
            base_url=live_site, viewport=PHONE, locale=locale, is_mobile=True, has_touch=True
        )
        contexts.append(context)
        return _watched(context, live_site, errors, elsewhere)

    yield opened
    for context in contexts:
        context.close()
    assert not errors, errors
    assert not elsewhere, elsewhere


@pytest.fixture
def filming(chromium: Any, live_site: str, tmp_path: Path) -> Iterator[Callable[[bytes], Any]]:
    """Open a phone whose camera films `picture` (a QR code another screen shows): a Chromium
    of its own, started with the fake camera of tests/fake_camera.py, on the live node as
    `open_browser` opens one, with the same checks (no script error, nothing fetched
    elsewhere)."""
    from tests.fake_camera import camera_args, y4m_of

    browsers: list[Any] = []
    errors: list[str] = []
    elsewhere: list[str] = []

    def filmed(picture: bytes) -> Any:
        video = y4m_of(picture, tmp_path / f"camera-{len(browsers)}.y4m")
        browser = chromium.browser_type.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS + camera_args(video)
        )
        browsers.append(browser)
        context = browser.new_context(
            base_url=live_site, viewport=PHONE, locale="fr-FR", is_mobile=True, has_touch=True
        )
        return _watched(context, live_site, errors, elsewhere)

    yield filmed
    for browser in browsers:
        browser.close()
    assert not errors, errors
    assert not elsewhere, elsewhere


STATIC = Path(__file__).resolve().parent.parent / "web" / "static"


@pytest.fixture(scope="module")
def _sou_js_page(chromium: Any) -> Iterator[tuple[Any, list[str]]]:
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_content("<!doctype html><html><head></head><body></body></html>")
    page.add_script_tag(content=(STATIC / "sou.js").read_text(encoding="utf-8"))
    yield page, errors
    context.close()


@pytest.fixture
def sou_js(_sou_js_page: tuple[Any, list[str]]) -> Iterator[Any]:
    """A blank page holding sou.js, served from nowhere: the helpers need no node. The
    module's tests share it (the helpers keep no state between calls); a script error fails
    the test it happened in."""
    page, errors = _sou_js_page
    errors.clear()
    yield page
    assert not errors, errors
