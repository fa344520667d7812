"""Amounts as people type them, read alike by the pages' script (Sou.parseCents in sou.js)
and by the server's forms (`parse_euros` in web/pages.py, tests/test_amounts.py): one table
(tests/typed_amounts.py), and every amount the node writes reads back as itself. In a real
headless Chromium; the send page on a node served for real (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from babel.numbers import get_decimal_symbol
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Page, expect

from tests.test_browser import balance, french, fund_browser_member, send, sign_up, someone
from tests.test_browser_operators import MESSAGES
from tests.typed_amounts import GROUP, LANGUAGES, LARGEST, TYPED, expected
from web.i18n import money

# Fixtures: `open_browser` (a phone's context on the live node), `sou_js` (a page holding sou.js).
pytest_plugins = ["tests.browser"]

# The script's refusals, as the table writes them: None, or 0 for zero (read, then refused
# by the form's own rule).
AS_IN_TABLE: dict[str, int | None] = {"bad": None, "decimals": None, "zero": 0}


def read_in_page(page: Page, texts: list[str], lang: str, unit: str = "SOU") -> list[Any]:
    """Sou.parseCents of each text on a page of `lang` on a node whose unit is `unit`."""
    options = {
        "maxAmount": LARGEST,
        "messages": MESSAGES,
        "decimal": get_decimal_symbol(lang),
        "group": GROUP[lang],
        "currency": unit,
    }
    results: list[Any] = page.evaluate(
        "([texts, options]) => texts.map((text) => {"
        " try { return Sou.parseCents(text, options); } catch (error) { return error.message; }"
        " })",
        [texts, options],
    )
    return [AS_IN_TABLE.get(r, r) if isinstance(r, str) else r for r in results]


@pytest.mark.one_database
@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_pages_read_what_people_type_as_the_server_does(
    sou_js: Page,
    lang: str,
) -> None:
    for unit in sorted({row.unit for row in TYPED}):
        rows = [row for row in TYPED if row.unit == unit]
        read = read_in_page(sou_js, [row.text for row in rows], lang, unit)
        assert list(zip([r.text for r in rows], read, strict=True)) == [
            (row.text, expected(row, lang)) for row in rows
        ]


@pytest.mark.one_database
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amounts=st.lists(st.integers(min_value=1, max_value=LARGEST), min_size=1, max_size=40),
    lang=st.sampled_from(LANGUAGES),
)
def test_every_amount_the_node_writes_reads_back_in_the_page(
    sou_js: Page,
    amounts: list[int],
    lang: str,
) -> None:
    """What the server writes (`money`, the pages' `page_money`) and what the script writes
    (Sou.formatCents, with the page's separators), typed back, is the same amount."""
    separators = {"decimal": get_decimal_symbol(lang), "group": GROUP[lang], "currency": "SOU"}
    by_script: list[str] = sou_js.evaluate(
        "([amounts, o]) => amounts.map((cents) => Sou.formatCents(cents, o))",
        [amounts, separators],
    )
    written = [money(cents, lang, currency) for cents in amounts for currency in ("SOU", "EUR")]
    assert by_script == [money(cents, lang, "SOU") for cents in amounts]
    assert read_in_page(sou_js, written, lang) == [c for c in amounts for _ in ("SOU", "EUR")]


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
