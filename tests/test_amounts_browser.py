"""Amounts as people type them, read alike by the send page (Sou.parseCents in sou.js) and
by the office's form (`parse_euros` in web/pages.py): "12,50", "12.50", "12,50 €",
"12.50 €" and "12,50 SOU" are all twelve euros fifty. In a real headless Chromium, on a
node served for real (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.test_browser import balance, french, fund_browser_member, send, sign_up, someone
from tests.test_browser_operators import parsed, sou_js  # noqa: F401  (fixture)
from web.pages import parse_euros

# Fixtures: `chromium` and `open_browser` (a phone's context on the live node).
pytest_plugins = ["tests.browser"]

WRITTEN = ["12,50", "12.50", "12,50 €", "12.50 €", "12,50 SOU", "12,50\u00a0€", "12,50 sou"]


@pytest.mark.one_database
@pytest.mark.parametrize("text", WRITTEN)
def test_the_pages_read_a_unit_after_the_figure(sou_js: Page, text: str) -> None:  # noqa: F811
    assert parsed(sou_js, text) == 1_250


@pytest.mark.one_database
@pytest.mark.parametrize("text", ["12,50 € €", "€", "SOU", "12,50 USD", "12 50 €", "-12 €"])
def test_a_unit_alone_or_another_currency_is_still_refused(
    sou_js: Page,  # noqa: F811
    text: str,
) -> None:
    assert parsed(sou_js, text) == "bad"


@pytest.mark.one_database
@pytest.mark.parametrize("text", ["12,50", "12.50", "12,50 €", "12.50 €"])
def test_the_office_reads_the_same_amounts(text: str) -> None:
    assert parse_euros(text) == 1_250


def test_the_send_page_takes_an_amount_written_with_its_unit(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    page = open_browser()
    me = sign_up(page, "Camille")
    louis = someone(village)
    fund_browser_member(village, me, 5_000)
    send(page, louis.id, "12.50 €")
    expect(page.locator("#sent")).to_be_visible()
    expect(page.locator("#sent-text")).to_have_text(
        french("Sent {amount} to {to}. Your balance is now {balance}.").format(
            amount="12,50 SOU", to="Louis", balance="37,50 SOU"
        )
    )
    send(page, louis.id, "12,50 SOU")
    expect(page.locator("#sent")).to_be_visible()
    assert balance(page) == 2_500 and louis.balance() == 2_500
