"""Every page fits a small phone: at 360 px wide, in French (the longer words), no page of
any role (resident, merchant, exchange office, treasurer, admin) is wider than the screen,
so that nobody has to scroll sideways to read a figure or reach a button. In a real
headless Chromium, on a node served for real (SQLite and PostgreSQL), with data on the
pages (movements, a shop's sales, the office's cash).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from playwright.sync_api import Page

from tests.browser import PHONE
from tests.conftest import OPERATORS, PASSWORD
from tests.people import fund, join, operator
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


def too_wide(page: Page, paths: list[str]) -> tuple[dict[str, int], set[str]]:
    """The pages of `paths` this browser may open that are wider than the screen (their
    width), and those it opened."""
    wide: dict[str, int] = {}
    opened: set[str] = set()
    for path in paths:
        answer = page.goto(path)
        if answer is None or answer.status != 200 or not page.url.endswith(path):
            continue  # not this role's page (refused, or sent to log in)
        opened.add(path)
        width = int(page.evaluate("document.documentElement.scrollWidth"))
        if width > PHONE["width"]:
            wide[path] = width
    return wide, opened


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
    people: dict[str, tuple[str, list[str]]] = {
        "resident": (camille.member["email"], [*paths, f"/wallet/receipts/{paid['transfer_id']}"]),
        "merchant": (shop.member["email"], paths),
        **{role: (email, paths) for role, (email, _) in OPERATORS.items()},
    }
    wide: dict[str, dict[str, int]] = {}
    for role, (email, role_paths) in people.items():
        page = open_browser()
        log_in(page, email, PASSWORD)
        page.wait_for_url(lambda url: "/login" not in url)
        found, opened = too_wide(page, role_paths)
        assert MUST_OPEN[role] <= opened, (role, sorted(opened))
        if found:
            wide[role] = found
    assert not wide, wide
