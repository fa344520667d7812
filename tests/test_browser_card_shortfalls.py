"""The treasurer's page of card shortfalls in a real headless Chromium, on a node served for
real and fed by localstripe (SQLite and PostgreSQL): from the navigation to the page, a
refused write-off that keeps what was typed, the member's later units taken back, a
shortfall written off, a wallet left frozen unfrozen by hand; each form sent again settles
once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect
from sqlalchemy import update

from members.access import forget_principals
from members.models import members
from tests.conftest import OPERATORS
from tests.people import fund, join
from tests.test_browser import french
from tests.test_browser_operators import flash, form_fields, logged_in, submit
from tests.test_card_shortfalls import _owing, _taken_back
from tests.test_card_topups import _audit_clean, _payment
from wallet_api.cards.service import FROZEN

if TYPE_CHECKING:
    from tests.stripe_server import StripeSite

# Fixtures: `chromium`, `open_browser`, and the local Stripe.
pytest_plugins = ["tests.browser", "tests.stripe_server"]

Browser = Callable[..., Page]


def test_the_treasurer_settles_card_shortfalls_in_the_browser(
    stripe_site: StripeSite, open_browser: Browser
) -> None:
    s = stripe_site
    camille, hugo, louis = (join(s.site, name) for name in ("Camille", "Hugo", "Louis"))
    taken = _owing(s, camille, 3_000, 2_500, 3_000)  # 25,00 owed
    written = _owing(s, hugo, 1_000, 1_000, 1_000)  # 10,00 owed
    fund(s.site, camille, 400)
    with s.node.engine.begin() as conn:  # left frozen though nothing is owed
        conn.execute(update(members).where(members.c.id == louis.id).values(frozen_reason=FROZEN))
    forget_principals(s.node)

    page = logged_in(open_browser, OPERATORS["treasurer"][0], "/treasurer")
    page.click("header nav a[href='/treasurer/cards']")
    page.wait_for_url("**/treasurer/cards")
    expect(page.locator("h1")).to_have_text(french("Card payments taken back"))
    owing = page.locator(f"#shortfall-{taken}")
    expect(owing.locator("h3")).to_contain_text("Camille · 25,00 SOU")
    expect(owing).to_contain_text(french("Owed since {moment}.").split("{")[0])

    # Refused without a reason: the page says why in French and keeps the other forms.
    write_off = f"#write-off-{written}"
    page.fill(f"#reason-write-off-{written}", "   ")
    assert submit(page, write_off).status == 422
    expect(flash(page)).to_have_text(
        french("Say why, in a few words (at most {maximum} characters).").format(maximum=200)
    )
    assert _payment(hugo, written)["shortfall"] == 1_000

    # The member's later units, taken back.
    resent = form_fields(page, f"take-back-{taken}")
    assert submit(page, f"#take-back-{taken}").status == 200
    expect(flash(page)).to_have_text(
        french("Took back {amount} from {name}.").format(amount="4,00 SOU", name="Camille")
    )
    expect(owing.locator("h3")).to_contain_text("21,00 SOU")
    again = page.request.post("/treasurer/cards", form=resent)  # the same form sent again
    assert again.ok
    assert _payment(camille, taken)["shortfall"] == 2_100

    # Written off, with a reason: the shortfall is gone, the settlement listed.
    page.fill(f"#reason-write-off-{written}", "Hugo a quitté le village")
    assert submit(page, write_off).status == 200
    expect(flash(page)).to_contain_text("10,00 SOU passés en perte pour Hugo")
    expect(page.locator(f"#shortfall-{written}")).to_have_count(0)
    expect(page.locator("#settlements")).to_contain_text("Hugo a quitté le village")
    assert _taken_back(s, written) == 1_000

    # A wallet frozen with nothing owed: unfrozen by hand; one owing has no such form.
    expect(page.locator(f"#frozen-{camille.id} form")).to_have_count(0)
    page.fill(f"#reason-unfreeze-{louis.id}", "Rien n’est dû")
    assert submit(page, f"#unfreeze-{louis.id}").status == 200
    expect(flash(page)).to_have_text(french("{name}'s wallet is unfrozen.").format(name="Louis"))
    expect(page.locator(f"#frozen-{louis.id}")).to_have_count(0)
    assert louis.get("/api/v1/me").json()["frozen"] is False
    _audit_clean(s)
