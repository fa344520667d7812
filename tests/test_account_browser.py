"""One's account in a real browser, in French, at a phone's width: a forgotten password
reset by the link a real SMTP server received, and the password changed on "Mon compte",
which ends the member's other sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.browser import PHONE
from tests.conftest import PASSWORD
from tests.people import join
from tests.smtp_server import SmtpServer, link_in, mail_settings, smtp_server  # noqa: F401
from tests.test_pos_browser import _log_in

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`

NEW_PASSWORD = "une autre phrase secrète"


@pytest.fixture
def node_settings(node_settings: Any, smtp_server: SmtpServer) -> Iterator[Any]:  # noqa: F811
    """The node of these tests sends mail through the test's SMTP server."""
    yield mail_settings(node_settings, smtp_server)


def fits_the_phone(page: Page) -> bool:
    return int(page.evaluate("document.documentElement.scrollWidth")) <= PHONE["width"]


@pytest.mark.one_database  # the pages' flow: the links' rules are tested on both databases
def test_a_forgotten_password_is_reset_from_the_mailed_link(
    open_browser: Callable[..., Page],
    village: TestClient,
    live_site: str,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    camille = join(village, "Camille")
    phone = open_browser()
    phone.goto("/login")
    phone.click("#forgot-link")
    expect(phone.locator("h1")).to_have_text("Mot de passe oublié")
    assert fits_the_phone(phone)
    phone.fill("#email", camille.member["email"])
    phone.click("#forgot-form button[type=submit]")
    expect(phone.locator("main .flash")).to_contain_text("un message avec un lien est en route")

    (message,) = smtp_server.wait_for(1)
    phone.goto(link_in(message, live_site))
    expect(phone.locator("#reset-form")).to_contain_text("Camille")
    assert fits_the_phone(phone)
    phone.fill("#password", NEW_PASSWORD)
    phone.fill("#password-again", NEW_PASSWORD)
    phone.click("#reset-form button[type=submit]")
    phone.wait_for_url("**/wallet")
    expect(phone.locator("header nav")).to_contain_text("Mon compte")

    assert camille.get("/api/v1/me").status_code == 401  # the session of joining ended
    again = open_browser()
    again.goto(link_in(message, live_site))
    expect(again.locator("main .flash")).to_contain_text("déjà servi")


@pytest.mark.one_database
def test_the_password_is_changed_on_my_account_and_other_sessions_end(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    lea = join(village, "Léa")
    laptop = open_browser()
    _log_in(laptop, lea, "/wallet")
    phone = open_browser()
    _log_in(phone, lea, "/wallet")
    phone.click("header nav >> text=Mon compte")
    expect(phone.locator("h1")).to_have_text("Mon compte")
    expect(phone.locator('#session-list [data-current="yes"]')).to_contain_text("cette session")
    expect(phone.locator("#session-list > li")).to_have_count(3)  # joining, laptop, phone
    assert fits_the_phone(phone)

    phone.fill("#current-password", PASSWORD)
    phone.fill("#new-password", NEW_PASSWORD)
    phone.fill("#new-password-again", NEW_PASSWORD)
    phone.click("#password-form button[type=submit]")
    expect(phone.locator("main .flash")).to_contain_text("Mot de passe changé")
    expect(phone.locator("#session-list > li")).to_have_count(1)
    expect(phone.locator("#only-session")).to_be_visible()

    laptop.goto("/wallet")
    laptop.wait_for_url("**/login*")
    laptop.fill("#email", lea.member["email"])
    laptop.fill("#password", NEW_PASSWORD)
    laptop.click("#login-form button[type=submit]")
    laptop.wait_for_url("**/wallet")
