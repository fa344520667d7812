"""The treasurer's dashboard in a real headless Chromium at a phone's width, in French: the
charts and tables fit 360 px, axe-core finds no serious violation, nothing breaks the
Content-Security-Policy, and the PDF is downloaded with the page saying it is being made.
The merchant's consent page, likewise, with the consent given."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import OPERATORS
from tests.people import join
from tests.test_pages_browser_walk import Walk, _log_in
from tests.test_reports import build, consent

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`
pytestmark = pytest.mark.one_database  # the page's flow; the figures are tested on both

PERIOD = "/treasurer/dashboard?first=2026-03-01&last=2026-04-30"


def fits_the_phone(page: Page) -> bool:
    return int(page.evaluate("document.documentElement.scrollWidth")) <= 360


def test_the_dashboard_on_a_phone(
    open_browser: Callable[..., Page],
    village: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node: Any = village.app.state.node  # type: ignore[attr-defined]
    made = build(node, monkeypatch)
    consent(node, made, "un", True)
    monkeypatch.undo()  # the ledger's clock back to now, for what the browser does
    node.ledger.clock = time.time
    walk = Walk("fr")
    page = walk.watch(open_browser())
    _log_in(page, OPERATORS["treasurer"][0], "/treasurer/dashboard")
    walk.visit(page, [PERIOD])
    assert fits_the_phone(page)
    charts = page.locator("figure.chart svg")
    expect(charts).to_have_count(4)
    for i in range(4):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] <= 360
    expect(page.locator("#merchants-table")).to_contain_text("Chez Un")
    expect(page.locator("#merchants-table")).not_to_contain_text("Chez Deux")
    expect(page.locator("#circulation-table tbody tr")).to_have_count(61)
    status = page.locator("#report-status")
    expect(status).to_contain_text("prend un moment")
    with page.expect_download() as downloading:
        page.click("#report-pdf button[type=submit]")
    download = downloading.value
    assert download.suggested_filename == "report-2026-03-01-2026-04-30.pdf"
    expect(status).to_have_attribute("data-state", "ready")
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
    assert not walk.problems, "\n".join(walk.problems)


def test_the_merchant_gives_consent_on_a_phone(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    shop = join(village, "Huit", "merchant", key=False)
    walk = Walk("fr")
    page = walk.watch(open_browser())
    _log_in(page, shop.member["email"], "/merchant/listing")
    walk.visit(page, ["/merchant/listing"])
    assert fits_the_phone(page)
    expect(page.locator("#consent-state")).to_contain_text("n’est pas nommé")
    page.click("#consent button[type=submit]")
    page.wait_for_url(re.compile(r"answered=yes"))
    expect(page.locator("#consent-state")).to_contain_text("peut être nommé")
    walk.check(page, "fr /merchant/listing after consent")
    assert not walk.problems, "\n".join(walk.problems)
