"""The residents' pages in a real headless Chromium, on a node served for real (SQLite and
PostgreSQL): joining, the device key made by WebCrypto, sending money, receipts checked in
the browser, refusals in French and in English, logging in and out, keys and tokens; and the
whole path from joining to a card top-up (on Stripe's Checkout page, served by a local
Stripe) to paying another member.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD, Clock
from tests.people import Person, fund, join
from web.i18n import translations

# Fixtures: `chromium` and `open_browser`; `checkout_site` (localstripe, the node set for it).
pytest_plugins = ["tests.browser", "tests.stripe_server"]

FR = translations("fr")
_serial = itertools.count(1)


def french(msgid: str) -> str:
    text = FR.gettext(msgid)
    assert text != msgid, f"no French for {msgid!r}"
    return text


def sign_up(page: Page, name: str) -> str:
    """Join in the browser as a resident; the wallet page makes the device key. The id."""
    page.goto("/join")
    page.fill("#display_name", name)
    page.fill("#email", f"{name.lower()}.{next(_serial)}@village.test")
    page.fill("#password", PASSWORD)
    page.click("#join-form button[type=submit]")
    page.wait_for_url("**/wallet")
    expect(page.locator("#device-key")).to_have_attribute("data-status", "made")
    return page.locator("#wallet-id").inner_text()


def api(page: Page, path: str) -> Any:
    """A JSON GET with the browser's own session cookie."""
    answer = page.request.get(path)
    assert answer.ok, answer.text()
    return answer.json()


def balance(page: Page) -> int:
    return int(api(page, "/api/v1/wallet")["balance"])


def send(page: Page, to: str, amount: str, memo: str = "") -> None:
    page.goto("/send")
    page.fill("#to", to)
    page.fill("#amount", amount)
    page.fill("#memo", memo)
    page.click("#send-form button[type=submit]")


def refused_with(page: Page, message: str) -> None:
    outcome = page.locator("#send-form .outcome")
    expect(outcome).to_be_visible()
    expect(outcome).to_have_text(message)
    expect(page.locator("#sent")).to_be_hidden()


def someone(village: TestClient, cents: int = 0) -> Person:
    """A member who joined through the API (no browser needed), funded if asked."""
    person = join(village, "Louis")
    if cents:
        fund(village, person, cents)
    return person


def fund_browser_member(village: TestClient, member_id: str, cents: int) -> None:
    fund(village, Person(village, {"id": member_id}), cents)


# -- joining, the device key, sending, the receipt -----------------------------------------


def test_join_pay_and_check_the_receipt_in_the_browser(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    page = open_browser()
    me = sign_up(page, "Camille")
    expect(page.locator("#balance")).to_have_text("0,00 SOU")
    keys = api(page, "/api/v1/me/keys")
    assert len(keys) == 1 and keys[0]["revoked_ms"] is None
    kept = page.evaluate("(id) => Sou.deviceKey(id).then((k) => k.keyId)", me)
    assert kept == keys[0]["key_id"]  # the browser holds the key the node registered
    extractable = page.evaluate(
        "(id) => Sou.deviceKey(id).then((k) => k.privateKey.extractable)", me
    )
    assert extractable is False

    louis = someone(village)
    fund_browser_member(village, me, 5_000)
    page.reload()
    expect(page.locator("#balance")).to_have_text("50,00 SOU")
    expect(page.locator("#device-key")).to_have_attribute("data-status", "kept")
    assert len(api(page, "/api/v1/me/keys")) == 1  # coming back makes no second key

    send(page, louis.id, "12,50", "Covoiturage")
    expect(page.locator("#sent")).to_be_visible()
    expect(page.locator("#sent-text")).to_have_text(
        french("Sent {amount} to {to}. Your balance is now {balance}.").format(
            amount="12,50 SOU", to="Louis", balance="37,50 SOU"
        )
    )
    expect(page.locator("#balance")).to_have_text("37,50 SOU")
    assert balance(page) == 3_750 and louis.balance() == 1_250
    received = louis.get("/api/v1/wallet/history").json()["items"][0]
    assert (received["amount"], received["counterparty"], received["memo"]) == (
        1_250,
        me,
        "Covoiturage",
    )

    page.click("#sent-receipt")
    page.wait_for_url(re.compile(r"/wallet/receipts/\d+$"))
    status = page.locator("#proof-status")
    expect(status).to_have_attribute("data-status", "verified")
    expect(status).to_have_text(french("Verified: this transfer is in the log the node signed."))
    expect(page.locator("#receipt-summary")).to_contain_text("−12,50 SOU")
    expect(page.locator("#receipt-summary")).to_contain_text("Covoiturage")

    page.goto("/wallet")
    first = page.locator("#history tbody tr").first
    expect(first).to_contain_text("Louis")
    expect(first).to_contain_text("−12,50 SOU")


def test_a_tampered_receipt_does_not_verify(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    page = open_browser()
    me = sign_up(page, "Camille")
    louis = someone(village)
    fund_browser_member(village, me, 2_000)
    send(page, louis.id, "7", "")
    expect(page.locator("#sent")).to_be_visible()
    receipt = page.locator("#sent-receipt").get_attribute("href")
    assert receipt is not None
    page.goto(receipt)
    expect(page.locator("#proof-status")).to_have_attribute("data-status", "verified")

    def altered(old: str, new: str) -> Callable[[Any], None]:
        def handler(route: Any) -> None:
            response = route.fetch()
            body = response.text()
            assert old in body
            route.fulfill(response=response, body=body.replace(old, new, 1))

        return handler

    # The entry says 7,01 instead of 7,00: the proof no longer leads to the signed root.
    page.route(f"**{receipt}", altered('\\"amount\\":700', '\\"amount\\":701'))
    page.reload()
    status = page.locator("#proof-status")
    expect(status).to_have_attribute("data-status", "failed")
    expect(status).to_have_text(
        french(
            "The proof does not check out: this receipt does not match the signed log. "
            "Keep this page and tell the association."
        )
    )
    # Another key than the node's: the checkpoint's signature is not the node's.
    page.unroute(f"**{receipt}")
    node_key = page.locator("#node-key").text_content() or ""
    other = ("B" if node_key[0] != "B" else "C") + node_key[1:]
    page.route(f"**{receipt}", altered(f'"nodeKey": "{node_key}"', f'"nodeKey": "{other}"'))
    page.reload()
    expect(page.locator("#proof-status")).to_have_attribute("data-status", "failed")


def test_refusals_are_shown_in_french_and_change_nothing(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    page = open_browser()
    me = sign_up(page, "Camille")
    louis = someone(village)
    fund_browser_member(village, me, 1_000)

    send(page, louis.id, "10,01")  # one cent too many
    refused_with(page, french("The balance is too low for this amount."))
    send(page, "personne-0000", "1")
    refused_with(page, french("There is no member with this id."))
    send(page, louis.id, "12,345")
    refused_with(page, french("At most two decimals: the smallest amount is one cent."))
    send(page, louis.id, "0,00")
    refused_with(page, french("The amount must be more than zero."))
    send(page, louis.id, "douze")
    refused_with(page, french("Write the amount as a number, for example 12.50."))
    send(page, f"member:{me.upper()}", "1")
    refused_with(page, french("You cannot send money to yourself."))
    send(page, louis.id, "10000,01")  # the node's largest payment is 10 000,00
    refused_with(
        page,
        french("This is more than the largest payment allowed ({max}).").format(
            max="10\u202f000,00 SOU"
        ),
    )
    assert balance(page) == 1_000 and louis.balance() == 0

    send(page, louis.id, "10")  # the whole balance, exactly: allowed
    expect(page.locator("#sent")).to_be_visible()
    assert balance(page) == 0 and louis.balance() == 1_000


def test_the_english_switch(open_browser: Callable[..., Page], village: TestClient) -> None:
    page = open_browser()
    me = sign_up(page, "Camille")
    louis = someone(village)
    fund_browser_member(village, me, 100)
    page.goto("/send")
    page.click("a.lang")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Send money")
    page.fill("#to", louis.id)
    page.fill("#amount", "1.01")
    page.click("#send-form button[type=submit]")
    refused_with(page, "The balance is too low for this amount.")  # the API spoke English
    page.fill("#amount", "0.991")
    page.click("#send-form button[type=submit]")
    refused_with(page, "At most two decimals: the smallest amount is one cent.")
    page.goto("/wallet")  # the choice is remembered
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#balance")).to_have_text("1.00 SOU")
    page.click("a.lang")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("#balance")).to_have_text("1,00 SOU")


def test_a_form_only_its_script_sends_waits_for_that_script(
    open_browser: Callable[..., Page], village: TestClient
) -> None:
    """On a slow phone the page shows before its scripts have run: the button of a form that
    only a script can send stays disabled until the page's own script has taken the form
    over (a plain page request would lose what was typed), and no button is ever enabled
    that a tap would leave doing nothing."""
    page = open_browser()
    me = sign_up(page, "Camille")
    louis = someone(village)
    fund_browser_member(village, me, 500)
    held: dict[str, Any] = {}  # script name -> its request, held back: both slow to come
    page.route(
        "**/static/*.js", lambda route: held.setdefault(route.request.url.split("/")[-1], route)
    )
    page.goto("/send", wait_until="commit")
    button = page.locator("#send-form button[type=submit]")
    expect(button).to_be_disabled()
    page.fill("#to", louis.id)
    page.fill("#amount", "2")
    page.press("#amount", "Enter")  # a form whose button is disabled is not sent by Enter
    button.click(force=True)
    assert "sou.js" in held and page.url.endswith("/send"), page.url
    held["sou.js"].continue_()
    page.wait_for_function("() => typeof Sou === 'object'")
    assert "wallet.js" in held  # sou.js has run, the wallet's script not yet
    expect(button).to_be_disabled()  # still: nothing would answer a tap
    page.press("#amount", "Enter")
    assert page.url.endswith("/send"), page.url
    held["wallet.js"].continue_()
    page.unroute("**/static/*.js")
    expect(page.locator("#payee")).to_be_visible()  # looked up from what was typed
    expect(button).to_be_enabled()
    assert page.input_value("#amount") == "2"  # what was typed is still there
    button.click()
    expect(page.locator("#sent")).to_be_visible()
    assert louis.balance() == 200


def test_a_merchant_joins_with_their_trade_in_the_browser(
    open_browser: Callable[..., Page],
) -> None:
    page = open_browser()
    page.goto("/join")
    trade = page.locator("#trade")
    expect(trade).to_be_hidden()  # residents have no trade to give
    page.check("input[name=role][value=merchant]")
    expect(trade).to_be_visible()
    page.fill("#display_name", "Jeanne")
    page.fill("#email", "fournil@village.test")
    page.fill("#password", PASSWORD)
    page.fill("#trade_name", "Le Fournil")
    page.fill("#category", "boulangerie")
    page.click("#join-form button[type=submit]")
    expect(page.locator("#address")).to_have_js_property("validity.valueMissing", True)
    assert page.url.endswith("/join")  # the browser asked for the address first
    page.fill("#address", "2 rue Haute")
    page.fill("#siret", "1234")
    page.click("#join-form button[type=submit]")
    expect(page.locator("main .flash.error")).to_have_text(french("A SIRET number has 14 digits."))
    expect(page.locator("#trade_name")).to_have_value("Le Fournil")  # what was typed stays
    expect(page.locator("#password")).to_have_value("")  # but never the password
    expect(trade).to_be_visible()
    page.fill("#password", PASSWORD)
    page.fill("#siret", "")
    page.click("#join-form button[type=submit]")
    page.wait_for_url("**/wallet")
    expect(page.locator("#device-key")).to_have_attribute("data-status", "made")
    assert api(page, "/api/v1/me")["role"] == "merchant"
    page.goto("/keys")
    expect(page.locator("#token-scope option[value=pos]")).to_have_count(1)


# -- logging in and out ---------------------------------------------------------------------


def log_out(page: Page) -> None:
    page.click("header form[action='/logout'] button")
    page.wait_for_url(re.compile(r"/$"))


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")


def test_logout_then_login_on_the_same_device_keeps_its_key(
    open_browser: Callable[..., Page],
) -> None:
    page = open_browser()
    sign_up(page, "Camille")
    email = api(page, "/api/v1/me")["email"]
    log_out(page)
    expect(page.locator("header")).to_contain_text(french("Log in"))
    page.goto("/wallet")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/wallet")
    expect(page.locator("#device-key")).to_have_attribute("data-status", "kept")
    assert len(api(page, "/api/v1/me/keys")) == 1


def test_failed_logins_then_the_wait_in_plain_words(
    open_browser: Callable[..., Page], node: Any, clock: Clock
) -> None:
    page = open_browser()
    sign_up(page, "Camille")
    email = api(page, "/api/v1/me")["email"]
    log_out(page)
    flash = page.locator("main .flash.error")
    for _ in range(node.settings.login_free_tries):
        log_in(page, email, "not my password")
        expect(flash).to_have_text(french("Wrong email or password."))
        expect(page.locator("#email")).to_have_value(email)
    log_in(page, email, PASSWORD)  # the right password, too soon
    wait = french("Several wrong passwords in a row: wait {seconds} seconds and try again.")
    expect(flash).to_have_text(wait.format(seconds=2))
    assert page.url.endswith("/login")
    assert page.request.get("/api/v1/me").status == 401
    clock.advance(2)
    log_in(page, email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/wallet$"))


# -- device keys and tokens -----------------------------------------------------------------


def test_revoking_this_devices_key_then_the_wallet_makes_a_new_one(
    open_browser: Callable[..., Page],
) -> None:
    page = open_browser()
    sign_up(page, "Camille")
    first = api(page, "/api/v1/me/keys")[0]["key_id"]
    page.goto("/keys")
    row = page.locator(f'tr[data-key-id="{first}"]')
    expect(row.locator(".this-device")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button[data-revoke-key]").click()
    expect(page.locator(f'tr[data-key-id="{first}"]')).to_have_attribute("data-revoked", "yes")
    page.goto("/wallet")
    expect(page.locator("#device-key")).to_have_attribute("data-status", "made")
    keys = api(page, "/api/v1/me/keys")
    assert [k["revoked_ms"] is None for k in keys] == [False, True]

    page.goto("/keys")
    page.fill("#token-label", "Agenda")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#new-token")).to_be_visible()
    token = page.locator("#new-token-value").inner_text().strip()
    bearer = {"Authorization": f"Bearer {token}"}
    answer = page.request.get("/api/v1/me", headers=bearer)
    assert answer.ok and answer.json()["id"] == api(page, "/api/v1/me")["id"]
    page.reload()  # the token is listed, never shown again
    expect(page.locator("#tokens tbody tr")).to_have_count(1)
    expect(page.locator("#tokens")).not_to_contain_text(token)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#tokens button[data-revoke-token]")
    expect(page.locator("#no-tokens")).to_be_visible()
    assert page.request.get("/api/v1/me", headers=bearer).status == 401


# -- the whole path: join, top up by card, pay --------------------------------------------


def test_join_top_up_by_card_then_pay_another_member(
    checkout_site: Any, open_browser: Callable[..., Page]
) -> None:
    s = checkout_site
    s.stripe.hold_webhooks(s.webhook_url)  # Stripe's webhook comes when the test says
    page = open_browser()
    # Stripe's Checkout page is the one page not served by the node (localstripe serves it).
    page.context.route(lambda url: url.startswith(s.stripe.url + "/"), lambda r: r.continue_())
    me = sign_up(page, "Camille")
    page.goto("/topup")
    page.fill("#card-form #amount", "20,50")
    page.click("#card-form button[type=submit]")
    page.wait_for_url(f"{s.stripe.url}/**")
    expect(page.locator("#total")).to_have_text("20.50 EUR")
    page.fill("#email", "camille@village.test")
    page.fill("#cardNumber", "4242 4242 4242 4242")
    page.fill("#cardExpiry", "12 / 34")
    page.fill("#cardCvc", "123")
    page.fill("#billingName", "Camille")
    page.click("#submit")
    page.wait_for_url(re.compile(r"/topup/card/pi_[A-Za-z0-9]+$"))  # back on the node
    intent = page.url.rsplit("/", 1)[-1]
    status = page.locator("#topup-status")
    expect(status).to_have_attribute("data-status", "created")
    expect(page.locator("#topup-message")).to_have_text(
        french("Waiting for Stripe to confirm your payment…")
    )
    assert balance(page) == 0  # nothing before Stripe's webhook says the card paid

    sent = s.stripe.sent("payment_intent.succeeded", intent)
    assert s.deliver(sent).status_code == 200  # Stripe's own webhook arrives
    expect(status).to_have_attribute("data-status", "credited")  # the page follows it
    assert balance(page) == 2_050
    page.goto("/wallet")
    expect(page.locator("#balance")).to_have_text("20,50 SOU")
    expect(page.locator("#history tbody tr").first).to_contain_text(french("Top-up"))

    louis = join(s.site, "Louis")
    send(page, louis.id, "20,50", "Tout")
    expect(page.locator("#sent")).to_be_visible()
    assert balance(page) == 0 and louis.balance() == 2_050
    page.click("#sent-receipt")
    expect(page.locator("#proof-status")).to_have_attribute("data-status", "verified")
    assert me in (page.locator("#leaf").text_content() or "")
