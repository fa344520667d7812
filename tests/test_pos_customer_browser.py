"""The customer's code names the shop it is for, in a real browser: the customer finds the
shop as on the send page, sees it before signing, and the code says where it is valid; the
shop named collects it, another shop's counter is told it was made for someone else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.people import fund, join
from tests.test_browser import french
from tests.test_pos_browser import _log_in
from tests.test_pos_codes import _collect
from tests.test_shops import approve, merchant

pytest_plugins = ["tests.browser"]  # fixtures: `chromium` and `open_browser`


@pytest.mark.one_database  # the page's flow: the server's refusal is tested on both
def test_a_code_for_one_shop_says_so_and_only_that_shop_collects_it(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    zoe = merchant(village, "Zoé", "Épicerie Chez Zoé", "Saint-Sou")
    jeanne = merchant(village, "Jeanne", "Le Fournil", "Valsou")
    approve(village, zoe, jeanne)
    camille = join(village, "Camille", key=False)
    fund(village, camille, 5000)

    phone = open_browser()
    _log_in(phone, camille, "/pay/code")
    phone.fill("#cap", "20")
    phone.fill("#shop", "fournil")
    options = phone.locator("#payees button")
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("Le Fournil")
    expect(options.first).to_contain_text(french("Shop · {place}").format(place="Valsou"))
    # Typed, not chosen: nothing is signed.
    phone.click("#code-form button[type=submit]")
    expect(phone.locator("#code-form .outcome")).to_have_text(
        french(
            "Choose the shop in the list, or empty the field: the code is then valid at any shop."
        )
    )
    expect(phone.locator("#code-shown")).to_be_hidden()
    options.first.click()
    expect(phone.locator("#payee-name")).to_have_text("Le Fournil")
    expect(phone.locator("#payee-detail")).to_contain_text("Valsou")
    phone.click("#code-form button[type=submit]")
    expect(phone.locator("#code-shown")).to_be_visible()
    expect(phone.locator("#code-shop")).to_have_text(
        french("Only valid at {shop}").format(shop="Le Fournil (Valsou)")
    )
    code = phone.locator("#code-text").inner_text().replace(" ", "")

    # Another shop's counter types the code: refused, saying why.
    counter = open_browser()
    _log_in(counter, zoe, "/pos")
    counter.fill("#code", code)
    counter.click("#code-look")
    expect(counter.locator("#collect-form .outcome")).to_have_text(
        french("The customer made this code for another shop.")
    )
    expect(counter.locator("#collect-found")).to_be_hidden()

    taken = _collect(jeanne, code, 1250)
    assert taken.status_code == 201, taken.text
    expect(phone.locator("#code-state")).to_contain_text("Le Fournil")
    expect(phone.locator("#code-state")).to_contain_text("12,50")
    assert (camille.balance(), jeanne.balance(), zoe.balance()) == (3750, 1250, 0)

    # A new code keeps the shop chosen; "Any shop" makes one any shop may collect.
    phone.click("#code-again")
    expect(phone.locator("#payee-name")).to_have_text("Le Fournil")
    phone.click("#payee-any")
    expect(phone.locator("#payee")).to_be_hidden()
    phone.fill("#cap", "5")
    phone.click("#code-form button[type=submit]")
    expect(phone.locator("#code-shown")).to_be_visible()
    expect(phone.locator("#code-shop")).to_be_hidden()
    code = phone.locator("#code-text").inner_text().replace(" ", "")
    assert zoe.get(f"/api/v1/pos/authorisations/{code}").status_code == 200
