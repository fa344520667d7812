"""The admin pages in a real headless Chromium, on a node served for real (SQLite and
PostgreSQL): an admin finds a member and renews the membership, makes an exchange-office
operator who then works at the new office, and every page reads right in French, and in
English after the switch; an office operator recovers a member's keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from ledger.canonical import b64
from ledger.signing import SigningKey
from tests.browser import PHONE
from tests.conftest import OPERATORS, PASSWORD
from tests.people import join
from tests.test_browser import french
from tests.test_browser_operators import flash, logged_in, submit

# Fixtures: `chromium` and `open_browser`.
pytest_plugins = ["tests.browser"]

Browser = Callable[..., Page]
MARKET = "guichet.du.marche.couvert.de.la.place@village.test"  # too long for one line


def fits_the_phone(page: Page) -> bool:
    """Nothing wider than the 360-pixel screen: no sideways scrolling."""
    return bool(page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"])


def test_an_admin_renews_a_membership_and_makes_an_office_operator_in_french(
    open_browser: Browser, village: TestClient
) -> None:
    camille = join(village, "Camille Dupont-Larchevêque", key=False)
    join(village, "Boulangerie du lavoir des Trois Chênes", "merchant", key=False)  # long email
    page = logged_in(open_browser, OPERATORS["admin"][0], "/")
    page.click("header nav a[href='/admin/members']")
    page.wait_for_url("**/admin/members")
    expect(page.locator("h1")).to_have_text(french("Members"))
    assert fits_the_phone(page)

    page.fill("#search-text", "dupont")
    with page.expect_navigation():
        page.click("#search-form button[type=submit]")
    row = page.locator("#members tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".membership")).to_have_text(french("Never paid"))
    expect(row.locator(".role")).to_have_text(french("Resident"))
    expect(row.locator(".frozen")).to_have_text(french("Open"))
    with page.expect_navigation():
        row.locator("a").click()
    assert page.url.endswith(f"/admin/members/{camille.id}")

    page.fill("#renew-until", "2031-12-31")
    answer = submit(page, "#renew-form")
    assert answer.status == 200 and page.url.endswith("?renewed=1")
    expect(flash(page)).to_have_text(
        french("The membership of {name} is paid up to {day}.").format(
            name="Camille Dupont-Larchevêque", day="31 décembre 2031"
        )
    )
    expect(page.locator("#membership")).to_have_text(
        french("Paid up to {day}").format(day="31 décembre 2031")
    )
    assert fits_the_phone(page)

    page.click("nav.sub a[href='/admin/operators']")
    page.wait_for_url("**/admin/operators")
    expect(page.locator("h1")).to_have_text(french("Operators"))
    page.check("input[name=role][value=office]")
    page.fill("#operator-office", "marche")
    page.fill("#operator-name", "Guichet du marché")
    page.fill("#operator-email", MARKET)
    page.fill("#operator-password", PASSWORD)
    answer = submit(page, "#operator-form")
    assert answer.status == 200 and "created=" in page.url
    expect(flash(page)).to_have_text(
        french("{name} can now log in with {email}, as {role}.").format(
            name="Guichet du marché",
            email=MARKET,
            role=french("Exchange-office operator").lower(),
        )
    )
    expect(page.locator("#operators")).to_contain_text(MARKET)
    assert fits_the_phone(page)

    # The same form again: the email is taken, said in French, what was typed kept.
    page.check("input[name=role][value=treasurer]")
    page.fill("#operator-name", "Guichet du marché")
    page.fill("#operator-email", MARKET)
    page.fill("#operator-password", PASSWORD)
    answer = submit(page, "#operator-form")
    assert answer.status == 409
    expect(flash(page)).to_have_text(french("An account already uses this email address."))
    expect(page.locator("#operator-email")).to_have_value(MARKET)
    expect(page.locator("#operator-password")).to_have_value("")

    market = logged_in(open_browser, MARKET, "/office")
    expect(market.locator("h1")).to_have_text(f"{french('Exchange office')} · marche")

    page.goto("/admin/members?lang=en")
    expect(page.locator("h1")).to_have_text("Members")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator(f"#members tr[data-member='{camille.id}'] .membership")).to_have_text(
        "Paid up to 31 December 2031"
    )
    page.goto(f"/admin/members/{camille.id}")  # English now, by the cookie
    expect(page.locator("#renew-form h2")).to_have_text("Renew the membership")
    page.goto("/admin/operators")
    expect(page.locator("#operator-form h2")).to_have_text("Make an operator")


def test_an_office_operator_recovers_a_lost_phones_keys(
    open_browser: Browser, village: TestClient
) -> None:
    camille = join(village, "Camille")
    lost = camille.key
    assert lost is not None
    page = logged_in(open_browser, OPERATORS["office"][0], "/office")
    page.click("header nav a[href='/admin/recovery']")
    page.wait_for_url("**/admin/recovery")
    expect(page.locator("h1")).to_have_text(french("Key recovery"))
    page.fill("#find-member", camille.member["email"])
    with page.expect_navigation():
        page.click("#find-form button[type=submit]")
    expect(page.locator(f"#member-keys tr[data-key-id='{lost.key_id}']")).to_have_attribute(
        "data-revoked", "no"
    )

    phone = SigningKey.generate()
    page.fill("#recovery-key", b64(phone.public_key))
    page.fill("#recovery-label", "nouveau téléphone")
    page.check("#identity-checked")
    answer = submit(page, "#recovery-form")
    assert answer.status == 200 and re.search(r"recovered=", page.url)
    message = french(
        "The keys of {name} are recovered: the old ones are revoked and the new device's "
        "key {key} is registered."
    )
    expect(flash(page)).to_have_text(message.format(name="Camille", key=phone.key_id))
    expect(page.locator(f"#member-keys tr[data-key-id='{lost.key_id}']")).to_have_attribute(
        "data-revoked", "yes"
    )
    expect(page.locator(f"#member-keys tr[data-key-id='{phone.key_id}']")).to_have_attribute(
        "data-revoked", "no"
    )
    assert fits_the_phone(page)
