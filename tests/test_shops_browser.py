"""Finding the shop in a real headless Chromium, on a node served for real (SQLite and
PostgreSQL): a customer finds a shop by typing words of its name, sees whom they pay before
signing, and reads names in the history and the receipt; a visitor goes from a shop's page
to paying it; an admin approves a merchant who waited, on the phone's screen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from members import service
from tests.conftest import OPERATORS, PASSWORD
from tests.people import Person, fund, join, operator
from tests.test_admin_browser import fits_the_phone
from tests.test_browser import balance, french, sign_up
from tests.test_browser_operators import flash, logged_in
from tests.test_shops import merchant

# What these tests check does not depend on the database.
pytestmark = pytest.mark.one_database

# Fixtures: `chromium` and `open_browser`.
pytest_plugins = ["tests.browser"]

Browser = Callable[..., Page]


def node_of(village: TestClient) -> Any:
    return village.app.state.node  # type: ignore[attr-defined]


def approve(village: TestClient, *people: Person) -> None:
    node = node_of(village)
    admin = service.get_member(node, operator(village, "admin").id)
    for person in people:
        service.approve_shop(node, admin, person.id)


def customer(open_browser: Browser, village: TestClient, cents: int) -> tuple[Page, str]:
    """A resident who joined in the browser (their key made there), funded."""
    page = open_browser()
    me = sign_up(page, "Camille")
    fund(village, Person(village, {"id": me}), cents)
    return page, me


def pay(page: Page, amount: str) -> None:
    page.fill("#amount", amount)
    page.click("#send-form button[type=submit]")
    expect(page.locator("#sent")).to_be_visible()


def test_a_customer_finds_the_shop_by_its_name_and_sees_whom_they_pay(
    open_browser: Browser, village: TestClient
) -> None:
    zoe = merchant(village, "Zoé Lefèvre", "Épicerie Chez Zoé", "Saint-Sou")
    fournil = merchant(village, "Jeanne", "Le Fournil", "Saint-Sou")
    hidden = merchant(village, "Marc", "Épicerie du Moulin")  # pending: never listed
    approve(village, zoe, fournil)
    page, _ = customer(open_browser, village, 5_000)
    page.goto("/send")

    page.fill("#to", "saint sou")
    options = page.locator("#payees button")
    expect(options).to_have_count(2)  # both shops of the place, none chosen yet
    expect(page.locator("#payee")).to_be_hidden()
    page.fill("#amount", "1")
    page.click("#send-form button[type=submit]")
    outcome = page.locator("#send-form .outcome")
    expect(outcome).to_have_text(french("Choose whom you pay in the list."))

    page.fill("#to", "EPICERIE")
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("Épicerie Chez Zoé")
    expect(options.first).to_contain_text(french("Shop · {place}").format(place="Saint-Sou"))
    assert hidden.id not in (page.locator("#payees").inner_html())
    options.first.click()
    expect(page.locator("#payees")).to_be_hidden()
    expect(page.locator("#payee-name")).to_have_text("Épicerie Chez Zoé")
    expect(page.locator("#payee-detail")).to_contain_text("Saint-Sou")
    pay(page, "12,50")
    expect(page.locator("#sent-text")).to_have_text(
        french("Sent {amount} to {to}. Your balance is now {balance}.").format(
            amount="12,50 SOU", to="Épicerie Chez Zoé", balance="37,50 SOU"
        )
    )
    expect(page.locator("#payee")).to_be_hidden()  # the next payment chooses again
    assert balance(page) == 3_750 and zoe.balance() == 1_250

    page.click("#sent-receipt")
    page.wait_for_url(re.compile(r"/wallet/receipts/\d+$"))
    expect(page.locator("#receipt-to")).to_have_text(f"{french('To')} Épicerie Chez Zoé")
    expect(page.locator("#receipt-from")).to_contain_text("Camille")
    page.goto("/wallet")
    first = page.locator("#history tbody tr").first
    expect(first).to_contain_text("Épicerie Chez Zoé")
    expect(first).not_to_contain_text(zoe.id)


def test_a_person_is_found_by_their_exact_wallet_id_only(
    open_browser: Browser, village: TestClient
) -> None:
    louis = join(village, "Louis Bernard")
    page, me = customer(open_browser, village, 1_000)
    page.goto("/send")
    page.fill("#to", "Louis")
    expect(page.locator("#payees-none")).to_be_visible()  # residents are not listed
    page.fill("#to", louis.id.upper())
    expect(page.locator("#payee-name")).to_have_text("Louis Bernard")
    detail = french("Member · wallet {id}").format(id=louis.id)
    expect(page.locator("#payee-detail")).to_have_text(detail)
    pay(page, "2")
    assert louis.balance() == 200
    received = louis.get("/api/v1/wallet/history").json()["items"][0]
    assert (received["counterparty"], received["counterparty_name"]) == (me, "Camille")


def test_from_a_shops_page_to_paying_it(open_browser: Browser, village: TestClient) -> None:
    zoe = merchant(village, "Zoé Lefèvre", "Épicerie Chez Zoé", "Saint-Sou")
    approve(village, zoe)
    camille = join(village, "Camille")
    fund(village, camille, 2_000)
    page = open_browser()
    page.goto("/shops/epicerie-chez-zoe")
    expect(page.locator("h1")).to_have_text("Épicerie Chez Zoé")
    expect(page.locator("#shop-place")).to_contain_text("Saint-Sou")
    assert fits_the_phone(page)
    page.click("#pay-shop")
    page.wait_for_url(re.compile(r"/login\?next="))  # log in, then back to pay the shop
    page.fill("#email", camille.member["email"])
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/send?to=epicerie-chez-zoe")
    expect(page.locator("#payee-name")).to_have_text("Épicerie Chez Zoé")  # chosen already
    expect(page.locator("#to")).to_have_value("Épicerie Chez Zoé")
    pay(page, "4,20")  # the device key is made as the payment is signed
    assert zoe.balance() == 420 and camille.balance() == 1_580
    missing = page.goto("/shops/nowhere")
    assert missing is not None and missing.status == 404


def test_an_admin_approves_a_merchant_who_waited(
    open_browser: Browser, village: TestClient
) -> None:
    shop = open_browser()
    shop.goto("/join")
    shop.check("input[name=role][value=merchant]")
    shop.fill("#display_name", "Zoé Lefèvre")
    shop.fill("#email", "zoe@village.test")
    shop.fill("#password", PASSWORD)
    shop.fill("#trade_name", "Épicerie Chez Zoé")
    shop.fill("#category", "épicerie")
    shop.fill("#address", "3 rue Haute")
    expect(shop.locator("#place")).to_have_value(node_of(village).settings.village)
    shop.fill("#place", "Saint-Sou")
    shop.click("#join-form button[type=submit]")
    shop.wait_for_url("**/wallet")
    expect(shop.locator("#shop-state")).to_have_attribute("data-status", "pending")

    page = logged_in(open_browser, OPERATORS["admin"][0], "/")
    page.goto("/admin/members")
    page.click("nav.sub a[href='/admin/merchants']")
    page.wait_for_url("**/admin/merchants")
    expect(page.locator("h1")).to_have_text(french("Merchants"))
    row = page.locator("#shops-pending tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Épicerie Chez Zoé")
    expect(row).to_contain_text("Saint-Sou")
    assert fits_the_phone(page)
    with page.expect_navigation():
        row.locator("button[value=approve]").click()
    expect(flash(page)).to_have_text(
        french(
            "{name} is approved: the shop is listed, found by its name and paid at the counter."
        ).format(name="Épicerie Chez Zoé")
    )
    expect(page.locator("#shops-pending tbody tr")).to_have_count(0)
    expect(page.locator("#shops-approved tbody tr")).to_have_count(1)

    shop.reload()
    expect(shop.locator("#shop-state")).to_have_count(0)
    expect(shop.locator("#shop-page")).to_have_attribute("href", "/shops/epicerie-chez-zoe")
