"""Every page fits a small phone: at 360 px wide, in French (the longer words), no page of
any role (resident, merchant, exchange office, treasurer, admin) is wider than the screen,
so that nobody has to scroll sideways to read a figure or reach a button. In a real
headless Chromium, on a node served for real (SQLite and PostgreSQL), with data on the
pages (movements, a shop's sales, the office's cash).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from playwright.sync_api import Page

from tests.browser import PHONE
from tests.conftest import OPERATORS, PASSWORD
from tests.people import Person, fund, join, operator
from tests.test_browser import log_in
from tests.test_office import cash_in, deposit
from tests.test_reconversion import ask
from tests.test_shops_browser import approve

# Fixtures: `chromium` and `open_browser` (a phone's context on the live node).
pytest_plugins = ["tests.browser"]

# Not pages to read: what leaves (logout), hands over to Stripe, or answers machines.
NOT_PAGES = ("/api/", "/static/", "/stripe/", "/logout", "/topup/card", "/.well-known/", "/-/")
MACHINES = ("/openapi.json", "/healthz", "/sw.js", "/favicon.ico", "/manifest.webmanifest")
# What each role is sure to open, so that a test finding no page cannot pass.
MUST_OPEN = {
    "resident": {"/wallet", "/send", "/topup", "/keys"},
    "merchant": {"/wallet", "/reconversion"},
    "office": {"/office"},
    "treasurer": {"/treasurer"},
    "admin": {"/admin/members"},
}


def pages_of(site: TestClient) -> list[str]:
    """The node's pages reached by GET without an id in their address."""
    found = set()
    for route in iter_route_contexts(site.app.routes):  # type: ignore[attr-defined]
        path = route.path or ""
        if "GET" not in (route.methods or ()) or "{" in path or path.startswith(NOT_PAGES):
            continue
        if path not in MACHINES:
            found.add(path)
    return sorted(found)


def opens(person: Person, paths: list[str]) -> list[str]:
    """The pages of `paths` this person may open: answered 200 at the same address, asked
    in-process as their browser asks (a refused page, or one sending them to log in, is not
    theirs). Only these are worth a browser's time."""
    headers = {**person.headers(), "Accept": "text/html", "Accept-Language": "fr"}
    theirs = []
    for path in paths:
        answer = person.client.get(path, headers=headers)
        page = answer.headers.get("content-type", "").startswith("text/html")  # not a file
        if answer.status_code == 200 and page and answer.url.path == path.split("?")[0]:
            theirs.append(path)
    return theirs


def too_wide(page: Page, paths: list[str]) -> dict[str, int]:
    """The pages of `paths` (each one this browser may open) wider than the screen: their
    width."""
    wide: dict[str, int] = {}
    for path in paths:
        answer = page.goto(path)
        assert answer is not None and answer.status == 200 and page.url.endswith(path), path
        width = int(page.evaluate("document.documentElement.scrollWidth"))
        if width > PHONE["width"]:
            wide[path] = width
    return wide


@pytest.mark.one_database  # a page's width is the same whichever database its figures come from
def test_no_page_is_wider_than_a_small_phone_in_french(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    camille, louis = join(village, "Camille-Éléonore Dupont-Larchevêque"), join(village, "Louis")
    shop = join(village, "Jeanne", role="merchant")
    approve(village, shop)
    fund(village, camille, 123_456)
    fund(village, shop, 50_000)
    paid = camille.pay(louis, 1_250, memo="Pain de campagne, croissants et brioche").json()
    camille.pay(shop, 2_075, memo="Panier de légumes de la semaine")
    office = operator(village, "office")
    assert cash_in(office, camille.id, 123_456).status_code == 201
    assert cash_in(office, louis.id, 2_000).status_code == 201
    assert deposit(office, 100_000, slip="BORDEREAU-2026-12-0042").status_code == 201
    quote = shop.get("/api/v1/reconversions/quote", params={"amount": 12_345}).json()
    asked = ask(shop, 12_345, quote["fee"], quote["cause_fee"], memo="Reconversion de décembre")
    assert asked.status_code == 201, asked.text
    village.app.state.node.new_sealer().seal_all()  # type: ignore[attr-defined]
    paths = pages_of(village)
    people: dict[str, tuple[Person, list[str]]] = {
        "resident": (camille, [*paths, f"/wallet/receipts/{paid['transfer_id']}"]),
        "merchant": (shop, paths),
        **{role: (operator(village, role), paths) for role in OPERATORS},
    }
    wide: dict[str, dict[str, int]] = {}
    for role, (person, role_paths) in people.items():
        opened = opens(person, role_paths)
        assert MUST_OPEN[role] <= set(opened), (role, opened)
        page = open_browser()
        log_in(page, person.member["email"], PASSWORD)
        page.wait_for_url(lambda url: "/login" not in url)
        found = too_wide(page, opened)
        if found:
            wide[role] = found
    assert not wide, wide
