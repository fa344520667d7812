"""A tablet at the till paired with its shop in a real browser: the merchant asks for a code
on their phone, the tablet opens its link, makes its key, lands on the point of sale, takes
a payment and refunds it from the day's page, signed with its counter key."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.people import fund, join
from tests.test_pos import _pay
from tests.test_pos_browser import _approved_shop, _log_in

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`


@pytest.mark.one_database  # the pages' flow: pairing's rules are tested on both databases
def test_a_tablet_pairs_takes_a_payment_and_refunds_it(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    zoe = _approved_shop(village)
    camille = join(village, "Camille")
    fund(village, camille, 5_000)

    phone = open_browser()
    _log_in(phone, zoe, "/pos/devices")
    expect(phone.locator("h1")).to_have_text("Appareils de caisse")
    phone.fill("#label", "Caisse 1")
    phone.click("#device-form button[type=submit]")
    expect(phone.locator("#pairing-code")).to_be_visible()
    link = phone.locator("#qr").get_attribute("data-url")
    assert link and "/pos/pair?code=" in link

    tablet = open_browser()
    tablet.goto(link)
    expect(tablet.locator("#pair-shop")).to_contain_text("Chez Zoé")
    expect(tablet.locator("#pair-shop")).to_contain_text("Caisse 1")
    tablet.click("#pair-form button[type=submit]")
    tablet.wait_for_url("**/pos")
    expect(tablet.locator("#live")).to_have_attribute("data-state", "live")

    for key in ["1", "2", ",", "5", "0"]:
        tablet.click(f'#keypad [data-key="{key}"]')
    tablet.click("#invoice-form button[type=submit]")
    expect(tablet.locator("#waiting")).to_be_visible()
    shown = tablet.locator("#qr").get_attribute("data-url")
    assert shown
    asked = {k: v[0] for k, v in parse_qs(urlsplit(shown).query).items()}
    bill = {"id": asked["i"], "merchant": asked["m"], "amount": int(asked["a"])}
    assert _pay(camille, bill).status_code == 201
    expect(tablet.locator("#paid-text")).to_contain_text("12,50")
    expect(tablet.locator("#paid-text")).to_contain_text("Camille")

    tablet.goto("/pos/day")
    form = tablet.locator(".refund-form").first
    form.locator("input[name=amount]").fill("2,50")
    tablet.once("dialog", lambda dialog: dialog.accept())
    form.locator("button").click()
    expect(tablet.locator("#takings")).to_contain_text("10,00")
    assert (camille.balance(), zoe.balance()) == (5_000 - 1_250 + 250, 1_250 - 250)

    # The tablet never opens the wallet; the merchant sees it paired and may remove it.
    assert tablet.goto("/wallet").status == 403  # type: ignore[union-attr]
    phone.goto("/pos/devices")
    expect(phone.locator('#devices [data-state="paired"]')).to_contain_text("Caisse 1")
    phone.click('#devices [data-state="paired"] button[type=submit]')
    expect(phone.locator("main .flash")).to_contain_text("Appareil retiré")
    tablet.goto("/pos")
    tablet.wait_for_url("**/login*")
