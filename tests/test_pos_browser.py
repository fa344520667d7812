"""The counter in a real browser: the shop shows a code, the customer's phone opens it and
pays, the point of sale turns to "Payé" without reload; refunds from the day's page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from members.shops import decide
from tests.conftest import PASSWORD
from tests.people import Person, fund, join
from tests.test_pos import _decode

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`, `filming`


def _approved_shop(village: TestClient, name: str = "Zoé") -> Person:
    merchant = join(village, name, role="merchant", key=False)
    node = village.app.state.node  # type: ignore[attr-defined]
    with node.engine.begin() as conn:
        decide(conn, merchant.id, "approved", None, int(time.time() * 1000))
    return merchant


def _log_in(page: Page, person: Person, then: str) -> None:
    page.goto("/login?next=" + then)
    page.fill("#email", person.member["email"])
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**" + then.split("?")[0] + "*")


def test_the_counter_shows_a_code_and_turns_to_paid_when_the_customer_pays(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    zoe = _approved_shop(village)
    camille = join(village, "Camille", key=False)
    fund(village, camille, 5000)

    counter = open_browser()
    _log_in(counter, zoe, "/pos")
    expect(counter.locator("#live")).to_have_attribute("data-state", "live")
    for key in ["1", "2", ",", "5", "0"]:
        counter.click(f'#keypad [data-key="{key}"]')
    expect(counter.locator("#amount")).to_have_value("12,50")
    counter.fill("#label", "2 baguettes")
    counter.click("#invoice-form button[type=submit]")
    expect(counter.locator("#waiting")).to_be_visible()
    expect(counter.locator("#qr")).to_have_js_property("complete", True)
    # The code on the screen, as a phone's camera sees it, is the signed link.
    shot = counter.locator("#qr").screenshot()
    url = counter.locator("#qr").get_attribute("data-url")
    assert url and _decode(shot) == [url]

    phone = open_browser()
    _log_in(phone, camille, "/wallet")
    phone.goto(url)
    expect(phone.locator("#pay-amount")).to_contain_text("12,50")
    expect(phone.locator("#payee")).to_contain_text("Chez Zoé")
    phone.click("#pay-form button[type=submit]")
    expect(phone.locator("#pay-done")).to_be_visible()
    expect(phone.locator("#balance")).to_contain_text("37,50")

    expect(counter.locator("#paid")).to_be_visible()
    expect(counter.locator("#paid-text")).to_contain_text("12,50")
    expect(counter.locator("#paid-text")).to_contain_text("Camille")
    expect(counter.locator("#takings")).to_contain_text("12,50")

    # Opened again, the code says it was paid; nothing more can be paid with it.
    phone.goto(url)
    expect(phone.locator("#invoice-state")).to_have_attribute("data-state", "paid")
    expect(phone.locator("#pay-form")).to_have_count(0)


@pytest.mark.one_database  # the page's flow: the ledger's rules are tested on both
def test_a_sticker_payment_arrives_and_the_shop_refunds_part_of_it(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    zoe = _approved_shop(village)
    camille = join(village, "Camille", key=False)
    fund(village, camille, 5000)
    counter = open_browser()
    _log_in(counter, zoe, "/pos")
    expect(counter.locator("#live")).to_have_attribute("data-state", "live")
    sticker = counter.request.get("/api/v1/pos/sticker.png").body()
    link = _decode(sticker)[0]

    phone = open_browser()
    _log_in(phone, camille, "/wallet")
    phone.goto(link)
    phone.fill("#amount", "8,20")
    phone.click("#pay-form button[type=submit]")
    expect(phone.locator("#pay-done")).to_be_visible()
    expect(counter.locator("#paid-text")).to_contain_text("8,20")
    expect(counter.locator("#sales li").first).to_contain_text("Camille")

    counter.goto("/pos/day")
    form = counter.locator(".refund-form").first
    form.locator("input[name=amount]").fill("3,20")
    counter.once("dialog", lambda dialog: dialog.accept())
    form.locator("button").click()
    expect(counter.locator("#takings")).to_contain_text("5,00")
    assert camille.balance() == 5000 - 820 + 320


@pytest.mark.one_database  # the page's flow: the ledger's rules are tested on both
def test_an_expired_code_is_refused_on_the_customer_phone(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    zoe = _approved_shop(village)
    camille = join(village, "Camille", key=False)
    fund(village, camille, 1000)
    made = zoe.post("/api/v1/pos/invoices", json={"amount": 300}).json()
    zoe.post(f"/api/v1/pos/invoices/{made['id']}/cancel")
    phone = open_browser()
    _log_in(phone, camille, "/wallet")
    link = urlsplit(made["url"])  # made through the in-process client: the path is the link
    phone.goto(f"{link.path}?{link.query}")
    expect(phone.locator("#invoice-state")).to_have_attribute("data-state", "cancelled")
    expect(phone.locator("#invoice-state")).to_contain_text("Annulée")
    assert camille.balance() == 1000


@pytest.mark.one_database  # the page's flow: the ledger's rules are tested on both
def test_the_counter_scans_the_code_a_customer_shows(
    open_browser: Callable[..., Page],
    filming: Callable[[bytes], Page],
    village: TestClient,
) -> None:
    """The customer's phone shows a code; the counter's camera (Chromium's fake camera
    filming that very picture) reads it; the shop takes 8,20 of the 20,00 authorised."""
    zoe = _approved_shop(village)
    camille = join(village, "Camille", key=False)
    fund(village, camille, 5000)

    phone = open_browser()
    _log_in(phone, camille, "/pay/code")
    phone.fill("#cap", "20")
    phone.click("#code-form button[type=submit]")
    expect(phone.locator("#code-shown")).to_be_visible()
    expect(phone.locator("#qr")).to_have_js_property("complete", True)
    shown = phone.locator("#qr").screenshot()
    assert _decode(shown) == [phone.locator("#qr").get_attribute("data-url")]

    counter = filming(shown)
    _log_in(counter, zoe, "/pos")
    counter.click("#scan-start")
    expect(counter.locator("#collect-found")).to_be_visible()
    expect(counter.locator("#collect-who")).to_contain_text("Camille")
    expect(counter.locator("#collect-who")).to_contain_text("20,00")
    counter.fill("#collect-amount", "8,20")
    counter.click("#collect-form button[type=submit]")
    expect(counter.locator("#paid")).to_be_visible()
    expect(counter.locator("#paid-text")).to_contain_text("8,20")
    expect(phone.locator("#code-state")).to_contain_text("8,20")
    expect(phone.locator("#code-state")).to_contain_text("Chez Zoé")
    expect(phone.locator("#balance")).to_contain_text("41,80")
    assert (camille.balance(), zoe.balance()) == (4180, 820)


def test_offline_the_counter_takes_a_code_and_sends_it_once_back_online(
    open_browser: Callable[..., Page],
    filming: Callable[[bytes], Page],
    village: TestClient,
) -> None:
    """The customer sets units aside, goes where there is no network, and shows a code their
    phone signs and draws; the counter, offline too, checks it with the node's key alone
    and keeps the collection; back online (the first answer lost on the way, the page
    reloaded meanwhile), it is sent and applied once."""
    zoe = _approved_shop(village)
    camille = join(village, "Camille", key=False)
    fund(village, camille, 5000)

    phone = open_browser()
    _log_in(phone, camille, "/pay/offline")
    phone.fill("#hold", "30")
    phone.click("#hold-form button[type=submit]")
    expect(phone.locator("#certificate")).to_have_attribute("data-state", "certified")
    expect(phone.locator("#allowance")).to_contain_text("30,00")
    expect(phone.locator("#offline-form")).to_have_attribute("data-qr", "ready")
    phone.context.set_offline(True)
    phone.fill("#offline-cap", "12")
    phone.click("#offline-form button[type=submit]")
    expect(phone.locator("#offline-shown")).to_be_visible()
    expect(phone.locator("#qr")).to_have_js_property("complete", True)
    shown = phone.locator("#qr").screenshot()
    assert _decode(shown) == [phone.locator("#qr").get_attribute("data-url")]

    counter = filming(shown)
    context = counter.context
    _log_in(counter, zoe, "/pos")
    expect(counter.locator("#live")).to_have_attribute("data-state", "live")
    expect(counter.locator("#scan-start")).to_have_attribute("data-decoder", "ready")
    context.set_offline(True)
    counter.click("#scan-start")
    expect(counter.locator("#collect-who")).to_contain_text("Camille")
    expect(counter.locator("#collect-who")).to_contain_text("12,00")
    counter.fill("#collect-amount", "8,20")
    counter.click("#collect-form button[type=submit]")
    expect(counter.locator("#paid-text")).to_contain_text("8,20")
    expect(counter.locator("#offline-queue li")).to_have_attribute("data-state", "pending")
    assert zoe.balance() == 0  # nothing reached the node yet

    # Back online, the first sending's answer is lost: the node posted, the page
    # never heard; the entry stays, and the page is reloaded.
    lost: list[str] = []

    def lose_answer(route: Any) -> None:
        route.fetch()
        lost.append(route.request.url)
        route.abort()

    counter.route("**/api/v1/pos/collections", lose_answer)
    context.set_offline(False)
    counter.wait_for_function("document.querySelector('#offline-queue li') !== null")
    for _ in range(200):  # until the node has answered the sending, and the answer is lost
        if lost:
            break
        counter.wait_for_timeout(100)
    assert lost and zoe.balance() == 820
    counter.unroute("**/api/v1/pos/collections")
    counter.reload()
    expect(counter.locator("#offline-section")).to_be_hidden()
    assert (zoe.balance(), camille.balance()) == (820, 5000 - 3000)
    assert camille.get("/api/v1/pay/allowance").json()["balance"] == 3000 - 820
