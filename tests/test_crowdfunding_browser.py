"""The campaign page in a real browser, in French: a member pledges on one phone (the
pledge signed by that phone's own key) and a second phone, left open on the same page,
sees the progress move without reloading."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import Page, expect

from tests.people import fund, join, operator
from tests.test_crowdfunding import opened
from tests.test_pos_browser import _log_in

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`


def test_a_pledge_on_one_phone_moves_the_progress_on_another(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    camille = join(village, "Camille", key=False)
    louis = join(village, "Louis", key=False)
    fund(village, camille, 5_000)
    campaign = opened(village, louis, goal=10_000)
    path = f"/campaigns/{campaign['id']}"

    watcher = open_browser()
    _log_in(watcher, louis, path)
    expect(watcher.locator("#pledged")).to_contain_text("0,00")
    expect(watcher.locator("#backers")).to_have_text("0")

    phone = open_browser()
    _log_in(phone, camille, path)
    expect(phone.locator("h1")).to_have_text("Réparer le lavoir")
    expect(phone.locator("main")).to_contain_text("Bénéficiaire\u202f: Louis")  # by name
    expect(phone.locator("#lower-form")).to_be_hidden()  # nothing pledged to lower yet
    expect(phone.locator("#no-key")).to_be_visible()
    phone.click("#make-key")
    expect(phone.locator("#no-key")).to_be_hidden()
    phone.fill("#pledge-amount", "25,50")
    phone.click("#pledge-form button[type=submit]")
    expect(phone.locator("#done")).to_contain_text("25,50")
    expect(phone.locator("#mine")).to_contain_text("25,50")
    expect(phone.locator("#lower-form")).to_be_visible()

    # The other phone, never reloaded, sees it within a few seconds.
    expect(watcher.locator("#pledged")).to_contain_text("25,50")
    expect(watcher.locator("#backers")).to_have_text("1")
    expect(watcher.locator("#percent")).to_have_text("25")

    # Above the balance: refused in French, nothing moves.
    phone.fill("#pledge-amount", "100")
    phone.click("#pledge-form button[type=submit]")
    expect(phone.locator("#pledge-form .outcome")).to_contain_text("solde")
    # Cancelled: back to nothing, on both phones.
    phone.fill("#lower-amount", "0")
    phone.click("#lower-form button[type=submit]")
    expect(phone.locator("#mine")).to_contain_text("0,00")
    expect(phone.locator("#lower-form")).to_be_hidden()
    expect(watcher.locator("#backers")).to_have_text("0")
    # The ledger trail: the pledge and its refund, each by its transfer id.
    phone.reload()
    expect(phone.locator("#trail tbody tr")).to_have_count(2)
    expect(phone.locator("#trail")).to_contain_text("remboursement")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360


def test_a_member_proposes_a_project_with_a_picture_and_the_admin_publishes_it(
    open_browser: Callable[..., Page], village: TestClient, tmp_path: Path
) -> None:
    camille = join(village, "Camille", key=False)
    admin = operator(village, "admin")
    picture = tmp_path / "lavoir.png"
    Image.new("RGB", (64, 48), (90, 140, 200)).save(picture, "PNG")

    phone = open_browser()
    _log_in(phone, camille, "/campaigns")
    phone.click("a[href='/campaigns/new']")
    phone.fill("#title", "Un four à pain")
    phone.fill("#description", "Un four communal sur la place.")
    phone.fill("#goal", "1 200,50")
    phone.fill("#days", "61")
    phone.click("#propose-form button[type=submit]")
    # The browser's own check, or the node's refusal in French: either way, not proposed.
    expect(phone).to_have_url(re.compile(r"/campaigns/new$"))
    phone.fill("#days", "20")
    phone.set_input_files("#picture", str(picture))
    phone.fill("#tier-minimum", "20")
    phone.fill("#tier-title", "Une fournée offerte")
    phone.fill("#tier-limit", "12")
    phone.click("#propose-form button[type=submit]")
    phone.wait_for_url(re.compile(r"/campaigns/[0-9]+$"))
    expect(phone.locator("#state")).to_contain_text("en attente de modération")
    expect(phone.locator("img.campaign-picture")).to_have_js_property("naturalWidth", 64)
    expect(phone.locator(".tiers")).to_contain_text("Une fournée offerte")
    expect(phone.locator(".tiers")).to_contain_text("0 contributeurs sur 12")

    desk = open_browser()
    _log_in(desk, admin, "/campaigns/moderation")
    card = desk.locator("section.moderation", has_text="Un four à pain")
    expect(card).to_contain_text("1 200,50")
    # A matching the commune's fund cannot promise (it is empty): refused in plain words.
    card.locator("input[name=percent]").fill("50")
    card.locator("input[name=cap]").fill("10")
    card.locator("form.publish-form button[type=submit]").click()
    expect(card.locator("form.publish-form .outcome")).to_contain_text("non encore promis")
    card.locator("input[name=percent]").fill("0")
    card.locator("form.publish-form button[type=submit]").click()
    expect(desk.locator("main")).to_contain_text("Publiée.")
    phone.reload()
    expect(phone.locator("#state")).to_contain_text("ouverte")
    expect(phone.locator("#days-left")).to_have_text("20")
    # Readable on a 360 px phone: nothing wider than the screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
