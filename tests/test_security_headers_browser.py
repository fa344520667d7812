"""Every page a visitor, a resident, a merchant, an exchange-office operator, the treasurer
and the admin can open, in Chromium and in French, under the node's Content-Security-Policy
(web/security.py): no page has anything the policy blocks (an inline script or style, an
asset from elsewhere), and none has a script error (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from playwright.sync_api import Page

from members.shops import decide, shop_of
from tests.conftest import OPERATORS, PASSWORD
from tests.people import Person, fund, join

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`

# The violations a page's own script could hide from the console, said in the console too.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(
    "Content Security Policy violation (event): " + event.violatedDirective + " "
      + event.blockedURI + " at " + event.sourceFile + ":" + event.lineNumber
  );
});
"""


def _watching(page: Page, violations: list[str]) -> Page:
    page.context.add_init_script(REPORT_VIOLATIONS)

    def heard(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", heard)
    return page


def _visit(page: Page, paths: list[str], violations: list[str]) -> None:
    for path in paths:
        answer = page.goto(path)
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert page.evaluate("document.documentElement.lang") == "fr", path
        # A javascript: link is blocked only once clicked: none is left to click.
        assert page.locator("[href^='javascript:' i]").count() == 0, path
        # The page's scripts run (service worker, QR writer, polling) before it is left.
        page.wait_for_load_state("networkidle")
    assert not violations, violations


def _log_in(page: Page, email: str, then: str) -> None:
    page.goto("/login?next=" + then)
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**" + then + "*")


def test_every_page_of_every_role_works_under_the_policy(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    violations: list[str] = []
    node = village.app.state.node  # type: ignore[attr-defined]
    merchant = join(village, "Boulangerie", role="merchant")
    with node.engine.begin() as conn:
        decide(conn, merchant.id, "approved", None, int(time.time() * 1000))
    with node.ledger.reading() as conn:
        shop = shop_of(conn, merchant.id)
    assert shop is not None
    camille = join(village, "Camille")
    fund(village, camille, 5_000)
    paid = camille.pay(merchant, 1_250, memo="Pain").json()["transfer_id"]

    visitor = _watching(open_browser(), violations)
    _visit(visitor, ["/", "/join", "/login", "/pos/pair", f"/shops/{shop.slug}"], violations)

    def signed_in(person: Person | str, landing: str) -> Page:
        email = person if isinstance(person, str) else person.member["email"]
        page = _watching(open_browser(), violations)
        _log_in(page, email, landing)
        return page

    resident = signed_in(camille, "/wallet")
    _visit(
        resident,
        [
            "/",
            "/wallet",
            "/send",
            "/keys",
            "/topup",
            f"/wallet/receipts/{paid}",
            "/pay/code",
            "/pay/offline",
            "/scan",
            "/plugins",
            "/tools",
            f"/shops/{shop.slug}",
        ],
        violations,
    )
    shopkeeper = signed_in(merchant, "/pos")
    _visit(
        shopkeeper,
        [
            "/wallet",
            "/pos",
            "/pos/day",
            "/pos/sticker",
            "/pos/devices",
            "/pay/code",
            "/pay/offline",
            "/scan",
            "/reconversion",
            f"/wallet/receipts/{paid}",
        ],
        violations,
    )
    office = signed_in(OPERATORS["office"][0], "/office")
    _visit(office, ["/office", "/notes/office"], violations)
    treasurer = signed_in(OPERATORS["treasurer"][0], "/treasurer")
    _visit(
        treasurer,
        ["/treasurer", "/treasurer/cards", "/treasurer/offices", "/notes"],
        violations,
    )
    admin = signed_in(OPERATORS["admin"][0], "/admin/members")
    _visit(
        admin,
        [
            "/admin/members?q=cam",
            f"/admin/members/{camille.id}",
            "/admin/merchants",
            "/admin/operators",
            "/admin/recovery",
        ],
        violations,
    )
