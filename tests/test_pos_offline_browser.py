"""Where there is no network, in a real browser: the customer's offline page opens with no
network once it was opened with it (the node's service worker kept it), and draws a code
that a counter accepts; a logout forgets what was kept. Two counters offline that took more
from one allowance than it holds: the first to come back is paid, the second is told why
not, in plain words, and keeps saying so."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from pos.codes.pages import OFFLINE_ASSETS, OFFLINE_PAGES
from tests.people import Person, fund, join
from tests.test_browser import french
from tests.test_pos_browser import _log_in
from tests.test_shops import approve, merchant

pytest_plugins = ["tests.browser"]  # fixtures: `chromium` and `open_browser`

# What these tests check is the pages' scripts and the service worker: one database will do.
pytestmark = pytest.mark.one_database

# Polled: each look asks the caches, the answer comes back for a later look to see.
NO_PAGE_KEPT = """() => {
  caches.keys().then((names) => {
    window.pagesKept = names.filter((name) => name.startsWith("sou-pages-")).length;
  });
  return window.pagesKept === 0;
}"""
KEPT_URLS = """async (prefix) => {
  const urls = [];
  for (const name of await caches.keys()) {
    if (!name.startsWith(prefix)) continue;
    const cache = await caches.open(name);
    for (const request of await cache.keys()) urls.push(new URL(request.url).pathname);
  }
  return urls.sort();
}"""


def _shops(village: TestClient) -> tuple[Person, Person]:
    zoe = merchant(village, "Zoé", "Épicerie Chez Zoé", "Saint-Sou")
    jeanne = merchant(village, "Jeanne", "Le Fournil", "Valsou")
    approve(village, zoe, jeanne)
    return zoe, jeanne


def _counter(open_browser: Callable[..., Page], shop: Person) -> Page:
    """The shop's point of sale, with the key it signs collections with made (it needs the
    node for that) and the page kept on the device: ready to work offline."""
    counter = open_browser()
    _log_in(counter, shop, "/pos")
    expect(counter.locator("#live")).to_have_attribute("data-state", "live")
    expect(counter.locator("body")).to_have_attribute("data-offline", "ready")
    # Each look asks IndexedDB; the answer comes back for a later look to see.
    counter.wait_for_function(
        """(id) => {
          Sou.deviceKey(id).then((key) => { window.keyMade = key !== null; });
          return window.keyMade === true;
        }""",
        arg=shop.id,
    )
    return counter


def _take(counter: Page, link: str, amount: str) -> None:
    """The counter takes an offline code: the link its scanner reads off the customer's
    screen, handed to the page as the camera hands it (the camera itself is tested in
    test_pos_browser.py)."""
    counter.evaluate("(link) => { document.getElementById('code').value = link; }", link)
    counter.click("#code-look")
    if amount:
        expect(counter.locator("#collect-found")).to_be_visible()
        counter.fill("#collect-amount", amount)
        counter.click("#collect-form button[type=submit]")
        expect(counter.locator("#paid-text")).to_contain_text(amount)


def _draw(phone: Page, cap: str, shop: str | None = None) -> str:
    """The customer's phone draws an offline code (for the shop found by `shop`, if any);
    the link it shows."""
    if shop:
        phone.fill("#shop", shop)
        phone.locator("#payees button").first.click()
    phone.fill("#offline-cap", cap)
    before = phone.locator("#qr").get_attribute("data-url")
    phone.click("#offline-form button[type=submit]")
    expect(phone.locator("#offline-shown")).to_be_visible()
    phone.wait_for_function(
        "(before) => document.getElementById('qr').dataset.url !== before", arg=before
    )
    link = phone.locator("#qr").get_attribute("data-url")
    assert link
    return link


def _customer(
    open_browser: Callable[..., Page], village: TestClient, hold: str
) -> tuple[Person, Page]:
    """Camille, 50,00 in her wallet, on her offline page: `hold` set aside, the certificate
    on her phone."""
    camille = join(village, "Camille", key=False)
    fund(village, camille, 5000)
    phone = open_browser()
    _log_in(phone, camille, "/pay/offline")
    phone.fill("#hold", hold)
    phone.click("#hold-form button[type=submit]")
    expect(phone.locator("#certificate")).to_have_attribute("data-state", "certified")
    return camille, phone


def test_the_offline_page_opens_without_network_and_its_code_is_accepted(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    zoe, _ = _shops(village)
    camille, phone = _customer(open_browser, village, "30")
    expect(phone.locator("body")).to_have_attribute("data-offline", "ready")
    expect(phone.locator("#offline-ready")).to_be_visible()
    expect(phone.locator("#offline-copy")).to_be_hidden()
    # Kept: this page and the files it loads; no answer of the API, no other page.
    kept = phone.evaluate(KEPT_URLS, "sou-")
    assert "/pos" in OFFLINE_PAGES  # asked for too, but a resident has no point of sale
    assert kept == sorted(["/pay/offline", *(f"/static/{name}" for name in OFFLINE_ASSETS)])

    phone.context.set_offline(True)
    phone.reload()
    expect(phone.locator("#offline-copy")).to_be_visible()
    expect(phone.locator("h1")).to_have_text(french("Paying offline"))
    expect(phone.locator("#certificate")).to_have_attribute("data-state", "certified")
    expect(phone.locator("#offline-form")).to_have_attribute("data-qr", "ready")
    phone.fill("#shop", "zoé")
    expect(phone.locator("#payees-none")).to_have_text(
        french("Shops can be searched only with the network.")
    )
    phone.fill("#shop", "")
    link = _draw(phone, "12")
    expect(phone.locator("#offline-shop")).to_be_hidden()
    assert zoe.balance() == 0

    counter = _counter(open_browser, zoe)
    _take(counter, link, "8,20")
    expect(counter.locator("#offline-section")).to_be_hidden()  # sent, and applied
    assert zoe.balance() == 820
    assert camille.get("/api/v1/pay/allowance").json()["balance"] == 3000 - 820

    # Back online, the page is the node's again; logged out, nothing of it is kept.
    phone.context.set_offline(False)
    phone.reload()
    expect(phone.locator("#offline-copy")).to_be_hidden()
    expect(phone.locator("#allowance")).to_contain_text("21,80")
    phone.click("header form[action='/logout'] button")
    phone.wait_for_url("**/")
    phone.wait_for_function(NO_PAGE_KEPT)
    phone.context.set_offline(True)
    with pytest.raises(PlaywrightError):
        phone.goto("/pay/offline")


def test_two_counters_offline_overspend_an_allowance_and_the_second_is_told_why(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    zoe, jeanne = _shops(village)
    camille, phone = _customer(open_browser, village, "10")
    for_zoe = _draw(phone, "8", shop="chez zoé")
    expect(phone.locator("#offline-shop")).to_have_text(
        french("Only valid at {shop}").format(shop="Épicerie Chez Zoé (Saint-Sou)")
    )
    for_jeanne = _draw(phone, "8", shop="fournil")
    expect(phone.locator("#offline-shop")).to_have_text(
        french("Only valid at {shop}").format(shop="Le Fournil (Valsou)")
    )

    first, second = _counter(open_browser, zoe), _counter(open_browser, jeanne)
    for counter in (first, second):
        counter.context.set_offline(True)
    second.reload()  # opened again where there is no network: the page kept answers
    expect(second.locator("#live")).to_have_attribute("data-state", "reconnecting")
    _take(first, for_zoe, "8,00")
    _take(second, for_zoe, "")  # made for the other shop: checked offline too
    expect(second.locator("#collect-form .outcome")).to_have_text(
        french("The customer made this code for another shop.")
    )
    _take(second, for_jeanne, "8,00")
    for counter in (first, second):
        expect(counter.locator("#offline-queue li")).to_have_attribute("data-state", "pending")
    assert zoe.balance() + jeanne.balance() == 0

    first.context.set_offline(False)
    expect(first.locator("#offline-section")).to_be_hidden()
    assert zoe.balance() == 800

    second.context.set_offline(False)
    refused = second.locator("#offline-queue li")
    expect(refused).to_have_attribute("data-state", "failed")
    why = french(
        "what {payer} set aside for offline payments no longer covers it: another shop "
        "collected from it first."
    ).format(payer="Camille")
    expect(refused).to_contain_text(why)
    expect(refused).to_contain_text("8,00")
    # Said at once where the shop looks, and "Paid" no longer shown for it.
    expect(second.locator("#collect-form .outcome")).to_contain_text(why)
    expect(second.locator("#paid")).to_be_hidden()
    second.reload()  # the refusal stays on the counter until the shop has seen to it
    expect(second.locator("#offline-queue li")).to_have_attribute("data-state", "failed")
    expect(second.locator("#offline-queue li")).to_contain_text(why)
    assert (zoe.balance(), jeanne.balance()) == (800, 0)
    assert camille.get("/api/v1/pay/allowance").json()["balance"] == 200
