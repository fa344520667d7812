"""A paper note in a real headless Chromium, in French, on a node served for real (SQLite and
PostgreSQL): two shops open the same note's page (what its QR code leads to); the first
deposits it, signed by its device's key; the second, clicking a moment later, is told the
note was already deposited, and its page says so from then on."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from members.shops import decide
from pos.notes import service
from pos.notes.errors import NOTE_DEPOSITED
from runtime.node import open_node
from runtime.settings import Settings
from tests.conftest import PASSWORD
from tests.people import Person, join, operator
from tests.test_notes import with_notes
from web.i18n import translations

# What these tests check does not depend on the database.
pytestmark = pytest.mark.one_database

# Fixtures: `chromium` and `open_browser`.
pytest_plugins = ["tests.browser"]

FR = translations("fr")


@pytest.fixture
def node(node_settings: Settings) -> Iterator[Any]:
    """The opened node, with the notes plugged in (the live site serves it)."""
    opened = open_node(node_settings, plugins=with_notes())
    yield opened
    opened.close()


def french(msgid: str) -> str:
    said = FR.gettext(msgid)
    assert said != msgid, f"no French for {msgid!r}"
    return said


def approved_shop(village: TestClient, name: str) -> Person:
    """A merchant who joined through the API, without a key (the browser makes one)."""
    merchant = join(village, name, role="merchant", key=False)
    with village.app.state.node.engine.begin() as conn:  # type: ignore[attr-defined]
        decide(conn, merchant.id, "approved", None, int(time.time() * 1000))
    return merchant


def signed_in(open_browser: Callable[..., Page], merchant: Person) -> Page:
    """The merchant's phone, logged in, its device key made by the wallet page."""
    page = open_browser()
    page.goto("/login")
    page.fill("#email", merchant.member["email"])
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"/(wallet)?$"))
    page.goto("/wallet")
    # The wallet the login landed on may have made the key before this second load: then
    # this one finds it kept on the device. Either way the phone holds it now.
    expect(page.locator("#device-key")).to_have_attribute(
        "data-status", re.compile(r"^(made|kept)$")
    )
    return page


def a_note_sold(village: TestClient) -> str:
    """A 10-unit note sold by the office: the path and query its QR code leads to."""
    treasurer, office = operator(village, "treasurer"), operator(village, "office")
    made = treasurer.post(
        "/api/v1/notes/series", json={"series": "A", "denomination": 1000, "count": 8}
    )
    assert made.status_code == 201, made.text
    sent = treasurer.post(
        "/api/v1/notes/dispatches",
        json={"series": "A", "first": 1, "last": 8, "office": "mairie"},
    )
    assert sent.status_code == 201, sent.text
    sold = office.post("/api/v1/notes/sales", json={"series": "A", "first": 3, "last": 3})
    assert sold.status_code == 201, sold.text
    node = village.app.state.node  # type: ignore[attr-defined]
    return service.note_link(node, "", service.find_series(node, "A"), 3)


def test_a_note_scanned_twice_is_deposited_once(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    note = a_note_sold(village)
    zoe, remi = approved_shop(village, "Zoé"), approved_shop(village, "Rémi")
    zoe_phone, remi_phone = signed_in(open_browser, zoe), signed_in(open_browser, remi)
    for phone in (zoe_phone, remi_phone):
        phone.goto(note)
        expect(phone.locator("#verdict")).to_have_attribute("data-state", "circulation")
        expect(phone.locator("#verdict")).to_have_text(
            french("Genuine note, in circulation: it is worth {amount}.").format(amount="10,00 SOU")
        )
        expect(phone.locator("#deposit")).to_be_visible()

    zoe_phone.click("#deposit")
    expect(zoe_phone.locator("#deposited")).to_have_text(
        french("Note deposited: {amount} credited to your wallet.").format(amount="10,00 SOU")
    )
    assert zoe.balance() == 1_000

    # The second shop's page was opened before: its click is refused, in plain French.
    remi_phone.click("#deposit")
    refusal = remi_phone.locator("#deposit-form .outcome")
    expect(refusal).to_be_visible()
    expect(refusal).to_have_text(french(NOTE_DEPOSITED.message))
    assert remi.balance() == 0

    # Opened again, the note says it was deposited; nobody is offered to deposit it.
    remi_phone.goto(note)
    expect(remi_phone.locator("#verdict")).to_have_attribute("data-state", "deposited")
    expect(remi_phone.locator("#verdict")).to_contain_text("déjà déposé")
    expect(remi_phone.locator("#deposit")).to_have_count(0)
    visitor = open_browser()
    visitor.goto(note)
    expect(visitor.locator("#verdict")).to_have_attribute("data-state", "deposited")
