"""The AMAP in a real browser, in French, at a phone's width: a member subscribes to a
free-choice contract (making this device's key on the page), orders for the next
distribution and signs its payment; the coordinator marks the distribution delivered; the
farm sees the units on its page; a subscriber subscribes with its first instalment in one
go, pays the next and declares an absence."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import Clock
from tests.people import fund, join
from tests.test_amap import make_amap
from tests.test_pos_browser import _log_in

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`


def fits_the_phone(page: Page) -> bool:
    return int(page.evaluate("document.documentElement.scrollWidth")) <= 360


@pytest.mark.one_database  # the pages' flow; the money's rules are tested on both databases
def test_a_member_subscribes_orders_and_the_farm_is_paid_at_delivery(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    clock = Clock()
    clock.ms = int(time.time() * 1000)  # the node's own clock: cut-offs a day from now
    amap = make_amap(village, clock)
    deal = amap.contract("free_choice")
    dist = amap.distribution(deal["id"], stock=5)
    carrots = amap.products["carottes"]
    camille = join(village, "Camille", key=False)
    fund(village, camille, 5_000)

    phone = open_browser()
    _log_in(phone, camille, f"/amap/contracts/{deal['id']}")
    expect(phone.locator("h1")).to_have_text("Contrat free_choice")
    phone.click("#subscribe-form button[type=submit]")
    expect(phone.locator("#my-subscription")).to_be_visible()
    expect(phone.locator("#no-key")).to_be_visible()
    phone.click("#make-key")
    expect(phone.locator("#done")).to_contain_text("Cet appareil peut maintenant signer")
    phone.fill(f"#q-{dist['id']}-{carrots}", "2")
    phone.click(f'.order-form[data-distribution="{dist["id"]}"] button[type=submit]')
    expect(phone.locator("#paid")).to_contain_text("5,00")
    expect(phone.locator(f"#q-{dist['id']}-{carrots}")).to_have_value("2")
    assert fits_the_phone(phone)
    assert camille.balance() == 4_500

    desk = open_browser()
    _log_in(desk, amap.coordinator, "/amap/coordination")
    row = desk.locator(f'li[data-distribution="{dist["id"]}"]')
    expect(row).to_contain_text("prévue")
    # Not squeezed into a narrow column: the state reads on one line, a word not broken.
    state = row.locator(".state-planned").bounding_box()
    assert state is not None and state["height"] < 2 * 18, state
    row.locator("form[data-action=delivered] button").click()
    expect(row.locator(".state-delivered")).to_have_text("livrée")
    assert fits_the_phone(desk)

    farm = open_browser()
    _log_in(farm, amap.farm, "/amap/producer")
    expect(farm.locator("#balance")).to_contain_text("5,00")
    expect(farm.locator("#released")).to_contain_text("5,00")
    assert fits_the_phone(farm)


@pytest.mark.one_database
def test_the_amap_pages_are_accessible_under_the_policy(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    """Under the node's Content-Security-Policy nothing is blocked nor said in the console,
    and axe-core finds no serious violation, on each AMAP page of each role."""
    from tests.test_pages_browser_walk import Walk

    clock = Clock()
    clock.ms = int(time.time() * 1000)
    amap = make_amap(village, clock)
    deal = amap.contract("free_choice")
    dist = amap.distribution(deal["id"])
    basket = amap.contract("subscription", jokers=1)
    amap.distribution(basket["id"])
    camille = amap.member("Camille")
    sub = amap.subscribe(camille, deal["id"])
    assert amap.order(camille, sub, dist["id"], {"oeufs": 2}, pay=80).status_code == 200
    amap.subscribe(camille, basket["id"])
    walk = Walk("fr")
    for person, paths in (
        (camille, ["/amap", f"/amap/contracts/{deal['id']}", f"/amap/contracts/{basket['id']}"]),
        (amap.farm, ["/amap", "/amap/producer"]),
        (amap.coordinator, ["/amap", "/amap/coordination"]),
        (amap.admin, ["/amap", "/amap/coordination"]),
    ):
        page = walk.watch(open_browser())
        _log_in(page, person, paths[0])
        walk.visit(page, paths)
        assert fits_the_phone(page)
    assert not walk.problems, "\n".join(walk.problems)


@pytest.mark.one_database
def test_the_admin_sets_up_a_contract_and_the_coordinator_plans_its_distribution(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    clock = Clock()
    clock.ms = int(time.time() * 1000)
    amap = make_amap(village, clock)
    desk = open_browser()
    _log_in(desk, amap.admin, "/amap")
    desk.fill("#place-name", "Salle des fêtes")
    desk.click("#place-form button[type=submit]")
    desk.wait_for_load_state("networkidle")
    desk.fill("#contract-title", "Paniers d'été")
    desk.fill("#contract-season", "Été 2027")
    desk.select_option("#contract-nature", "subscription")
    desk.fill("#contract-instalments", "3")
    desk.fill("#contract-coordinators", amap.coordinator.id)
    desk.fill(f"#basket-{amap.products['carottes']}", "2")
    desk.click("#contract-form button[type=submit]")
    expect(desk.locator("#contracts")).to_contain_text("Paniers d'été")
    (made,) = [
        c
        for c in amap.coordinator.get("/api/v1/amap/contracts").json()
        if c["season"] == "Été 2027"
    ]
    assert (made["nature"], made["instalments"]) == ("subscription", 3)
    shown = amap.coordinator.get(f"/api/v1/amap/contracts/{made['id']}").json()
    assert shown["basket_price"] == 500 and shown["coordinators"] == [amap.coordinator.id]

    coordinator = open_browser()
    _log_in(coordinator, amap.coordinator, "/amap/coordination")
    form = coordinator.locator(f'.plan-form[data-contract="{made["id"]}"]')
    form.locator("input[name=day]").fill("2027-06-05")
    form.locator("input[name=cutoff]").fill("2027-06-03T18:00")
    form.locator("select[name=place]").select_option(label="Salle des fêtes")
    form.locator("button[type=submit]").click()
    card = coordinator.locator(f'section[data-contract="{made["id"]}"]')
    expect(card.locator("li.amap-distribution")).to_have_count(1)
    expect(card.locator("li.amap-distribution")).to_contain_text("prévue")
    assert fits_the_phone(coordinator)


@pytest.mark.one_database
def test_a_subscriber_pays_an_instalment_and_declares_an_absence(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    clock = Clock()
    clock.ms = int(time.time() * 1000)
    amap = make_amap(village, clock)
    deal = amap.contract("subscription", instalments=2, jokers=1)
    first, _ = amap.distribution(deal["id"]), amap.distribution(deal["id"])
    lea = amap.member("Léa")
    phone = open_browser()
    _log_in(phone, lea, f"/amap/contracts/{deal['id']}")
    phone.click("#no-key #make-key")  # this browser's own key, beside the test's
    expect(phone.locator("#done")).to_contain_text("Cet appareil peut maintenant signer")
    # Subscribing carries its first payment: here the first of two instalments, in one go.
    expect(phone.locator("#subscribe-form")).to_contain_text("10,00")  # the whole season
    phone.check("#subscribe-form input[value=instalment]")
    phone.click("#subscribe-form button[type=submit]")
    expect(phone.locator("#paid")).to_contain_text("5,00")
    expect(phone.locator("#schedule")).to_contain_text("réglé")
    expect(phone.locator("#pay-form")).to_contain_text("à régler avant le")
    expect(phone.locator("#pay-form button")).to_contain_text("5,00")  # the second half
    phone.click("#pay-form button[type=submit]")
    expect(phone.locator("#paid")).to_contain_text("10,00")
    phone.click(f'.absence-form[data-distribution="{first["id"]}"] button[type=submit]')
    expect(phone.locator(f'.absence-form[data-distribution="{first["id"]}"]')).to_have_count(0)
    assert amap.mine(lea, {"id": amap.mine_id(lea, deal["id"])})["jokers_used"] == 1
    assert fits_the_phone(phone)
