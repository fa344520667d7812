"""Every page a visitor, a resident, a merchant, an exchange-office operator, the treasurer
and the admin can open, in Chromium, walked once in French and once in English: on each,
under the node's Content-Security-Policy (web/security.py), nothing is blocked (an inline
script or style, an asset from elsewhere) and nothing is said in the console as an error;
and axe-core (tests/vendor/axe-core) finds no accessibility violation of serious or critical
impact. A refused login, join and payment are looked at too: they show a message the plain
pages do not.

Each language is walked on one database, French on SQLite and English on PostgreSQL: what
a page shows does not hang on the database, and every page is still opened on both. Each
role walks in a test of its own, on a village of its own, so that the cores of a run
(pytest-xdist) share the walks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page

from members.shops import decide, shop_of
from tests.conftest import OPERATORS, PASSWORD
from tests.people import Person, fund, join

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")  # axe-core's impacts that fail the walk
LOAD = "Failed to load resource"  # Chromium's words for an answer that is not 2xx or 3xx
INERT = "button[data-script-sends]:disabled"

# The violations a page's own script could hide from the console, said in the console too.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(
    "Content Security Policy violation (event): " + event.violatedDirective + " "
      + event.blockedURI + " at " + event.sourceFile + ":" + event.lineNumber
  );
});
"""

# Every rule axe-core runs by default (WCAG 2.x A and AA, and its best practices); only the
# violations are wanted, each with the elements it was found on.
RUN_AXE = """async (blocking) => {
  const found = await axe.run(document, { resultTypes: ["violations"] });
  return found.violations
    .filter((rule) => blocking.includes(rule.impact))
    .map((rule) => ({
      id: rule.id,
      impact: rule.impact,
      help: rule.help,
      targets: rule.nodes.map((node) => node.target.join(" ")),
    }));
}"""


@cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def _load_axe(page: Page) -> None:
    """axe-core into the page, once, through the DevTools protocol (Runtime.evaluate), which
    the page's Content-Security-Policy does not govern: the node never serves it."""
    if page.evaluate("typeof axe === 'undefined'"):
        page.evaluate(_axe_source())


@dataclass
class Walk:
    """What a walk found wrong, page by page: said all at once when it ends."""

    lang: str
    problems: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.context.add_init_script(REPORT_VIOLATIONS)

        def heard(message: Any) -> None:
            # A refused form's answer (a 4xx page) is the test's to check, not an error.
            refused = message.location.get("url") == page.url
            if message.type == "error" and not (refused and message.text.startswith(LOAD)):
                self.problems.append(f"{page.url}: console error: {message.text}")

        page.on("console", heard)
        return page

    def check(self, page: Page, where: str) -> None:
        """The page as it stands: its language, no javascript: link, and what axe-core finds."""
        assert page.evaluate("document.documentElement.lang") == self.lang, where
        # A javascript: link is blocked only once clicked: none is left to click.
        assert page.locator("[href^='javascript:' i]").count() == 0, where
        _load_axe(page)
        for rule in page.evaluate(RUN_AXE, list(BLOCKING)):
            for target in rule["targets"]:
                self.problems.append(
                    f"{where}: axe {rule['id']} ({rule['impact']}) on {target}: {rule['help']}"
                )

    def visit(self, page: Page, paths: list[str], status: int = 200) -> None:
        for path in paths:
            answer = page.goto(path)
            assert answer is not None and answer.status == status, (path, answer and answer.status)
            assert answer.headers["content-security-policy"].startswith("default-src 'self'")
            _load_axe(page)  # while the page's last requests settle
            # The page's scripts run (service worker, QR writer, polling) before it is read.
            page.wait_for_load_state("networkidle")
            self.check(page, f"{self.lang} {path}")
            self.sendable(page, f"{self.lang} {path}")

    def sendable(self, page: Page, where: str) -> None:
        """Every form only the page's script sends has been taken over by it (`Sou.sends`
        enables its buttons, disabled by the server until then)."""
        for button in page.eval_on_selector_all(INERT, "found => found.map((b) => b.outerHTML)"):
            self.problems.append(f"{where}: a button its script never took over: {button}")


def _local(link: str) -> str:
    """A link the node gave, on whichever node the browser is on."""
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def _log_in(page: Page, email: str, then: str) -> None:
    page.goto("/login?next=" + then)
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**" + then + "*")


def _refused_login(walk: Walk, page: Page) -> None:
    page.goto("/login")
    page.fill("#email", "nobody@village.test")
    page.fill("#password", "not the password")
    page.click("#login-form button[type=submit]")
    page.locator(".flash").wait_for()
    walk.check(page, f"{walk.lang} /login refused")


def _refused_join(walk: Walk, page: Page, taken: str) -> None:
    page.goto("/join")
    page.fill("#display_name", "Camille bis")
    page.fill("#email", taken)
    page.fill("#password", PASSWORD)
    page.click("#join-form button[type=submit]")
    page.locator(".flash").wait_for()
    walk.check(page, f"{walk.lang} /join refused")


def _refused_payment(walk: Walk, page: Page) -> None:
    page.goto("/send")
    page.fill("#to", "nobody-at-all")
    page.fill("#amount", "1")
    page.locator("#payees-none").wait_for()
    page.click("#send-form button[type=submit]")
    page.locator("#send-form .outcome").wait_for()
    walk.check(page, f"{walk.lang} /send refused")


@dataclass
class Village:
    """What the pages show: an approved shop, a resident who paid it, an open invoice."""

    merchant: Person
    resident: Person
    shop: str  # its slug
    paid: str  # a transfer id
    bill: dict[str, Any]
    campaign: int  # a village project, open to pledges, one pledged


def _village(site: TestClient) -> Village:
    node = site.app.state.node  # type: ignore[attr-defined]
    merchant = join(site, "Boulangerie", role="merchant")
    with node.engine.begin() as conn:
        decide(conn, merchant.id, "approved", None, int(time.time() * 1000))
    with node.ledger.reading() as conn:
        shop = shop_of(conn, merchant.id)
    assert shop is not None
    camille = join(site, "Camille")
    fund(site, camille, 5_000)
    paid = camille.pay(merchant, 1_250, memo="Pain").json()["transfer_id"]
    bill = merchant.post("/api/v1/pos/invoices", json={"amount": 480, "label": "Croissants"})
    assert bill.status_code == 201, bill.text
    return Village(merchant, camille, shop.slug, paid, bill.json(), _campaign(site, camille))


def _campaign(site: TestClient, owner: Person) -> int:
    from plugins.crowdfunding import service

    proposed = owner.post(
        "/api/v1/campaigns",
        json={
            "title": "Réparer le lavoir",
            "description": "Le toit fuit.",
            "goal": 20_000,
            "days": 20,
        },
    )
    assert proposed.status_code == 201, proposed.text
    campaign = service.publish(site.app.state.node, proposed.json()["id"])  # type: ignore[attr-defined]
    pledged = owner.post(
        f"/api/v1/campaigns/{campaign['id']}/pledges",
        json=owner.order("escrow_payment", to=service.escrow(campaign["id"]), amount=1_500),
    )
    assert pledged.status_code == 201, pledged.text
    waiting = owner.post(  # for the admin's moderation queue
        "/api/v1/campaigns",
        json={
            "title": "Un four à pain",
            "description": "Sur la place.",
            "goal": 90_000,
            "days": 30,
        },
    )
    assert waiting.status_code == 201, waiting.text
    return int(campaign["id"])


def _as_visitor(walk: Walk, page: Page, seen: Village) -> None:
    walk.visit(
        page,
        [
            "/",
            "/join",
            "/login",
            "/password/forgot",
            "/pos/pair",
            f"/shops/{seen.shop}",
            "/campaigns",
            f"/campaigns/{seen.campaign}",
            "/transparence",
        ],
    )
    walk.visit(page, ["/password/reset/" + "x" * 43], status=404)  # a link never made
    # What a camera app opens from a customer's code or a paper note, and a page not found.
    walk.visit(page, ["/c/ABCD2345"])
    walk.visit(page, ["/n/nowhere/1"], status=400)
    walk.visit(page, ["/nowhere"], status=404)
    _refused_login(walk, page)
    _refused_join(walk, page, seen.resident.member["email"])


def _as_resident(walk: Walk, page: Page, seen: Village) -> None:
    walk.visit(
        page,
        [
            "/",
            "/wallet",
            "/send",
            "/keys",
            "/account",
            "/topup",
            f"/wallet/receipts/{seen.paid}",
            "/pay/code",
            "/pay/offline",
            "/scan",
            "/plugins",
            "/tools",
            "/campaigns",
            "/campaigns/new",
            f"/campaigns/{seen.campaign}",
            "/campaigns/matching",
            "/amap",
            f"/shops/{seen.shop}",
            _local(seen.bill["url"]),
        ],
    )
    _refused_payment(walk, page)


def _as_merchant(walk: Walk, page: Page, seen: Village) -> None:
    walk.visit(
        page,
        [
            "/wallet",
            "/pos",
            "/pos/day",
            f"/pos/invoices/{seen.bill['id']}",
            "/pos/sticker",
            "/pos/devices",
            "/bank-details",
            "/merchant/listing",
            "/pay/code",
            "/pay/offline",
            "/scan",
            "/reconversion",
            f"/wallet/receipts/{seen.paid}",
        ],
    )


def _as_office(walk: Walk, page: Page, seen: Village) -> None:
    walk.visit(page, ["/office", "/notes/office", "/account"])


def _as_treasurer(walk: Walk, page: Page, seen: Village) -> None:
    walk.visit(
        page,
        [
            "/treasurer",
            "/treasurer/cards",
            "/treasurer/offices",
            "/treasurer/audit",
            "/treasurer/dashboard",
            "/treasurer/reconciliation",
            "/treasurer/payouts",
            "/treasurer/exports",
            "/notes",
            "/campaigns/matching",
        ],
    )


def _as_admin(walk: Walk, page: Page, seen: Village) -> None:
    walk.visit(
        page,
        [
            "/admin/members?q=cam",
            f"/admin/members/{seen.resident.id}",
            "/admin/merchants",
            "/admin/operators",
            "/admin/recovery",
            "/campaigns/moderation",
            f"/campaigns/{seen.campaign}",
        ],
    )


# Each role's walk, and where a signed-in role lands once logged in.
WALKS: dict[str, Callable[[Walk, Page, Village], None]] = {
    "visitor": _as_visitor,
    "resident": _as_resident,
    "merchant": _as_merchant,
    "office": _as_office,
    "treasurer": _as_treasurer,
    "admin": _as_admin,
}
LANDINGS = {
    "resident": "/wallet",
    "merchant": "/pos",
    "office": "/office",
    "treasurer": "/treasurer",
    "admin": "/admin/members",
}


def _email(seen: Village, role: str) -> str:
    if role == "resident":
        return str(seen.resident.member["email"])
    if role == "merchant":
        return str(seen.merchant.member["email"])
    return OPERATORS[role][0]


@pytest.mark.parametrize("role", list(WALKS))
# French on SQLite: the first language is walked even where no PostgreSQL runs.
@pytest.mark.parametrize(
    ("node_settings", "lang"),
    [("sqlite", "fr"), ("postgresql", "en")],
    indirect=["node_settings"],
)
def test_every_page_of_every_role_is_accessible_under_the_policy(
    open_browser: Callable[..., Page], village: TestClient, lang: str, role: str
) -> None:
    walk = Walk(lang)
    locale = {"fr": "fr-FR", "en": "en-GB"}[lang]
    seen = _village(village)
    # A browser of its own for the role, logged in once for all its pages.
    page = walk.watch(open_browser(locale))
    if role in LANDINGS:
        _log_in(page, _email(seen, role), LANDINGS[role])
    WALKS[role](walk, page, seen)
    assert not walk.problems, "\n".join(walk.problems)
