"""The operators' and merchants' pages in a real headless Chromium, on a node served for real
(SQLite and PostgreSQL): the exchange office recording cash and deposits, the treasurer
reconciling them and paying or rejecting reconversions, a merchant asking for one with a key
made in the browser, the top-up page without Stripe, and who sees which page; then the
amount helpers all pages share (`Sou.parseCents`, `Sou.formatCents`, `Sou.fill`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Locator, Page, Response, expect

from ledger import repository as ledger_repo
from tests.conftest import OPERATORS, PASSWORD
from tests.people import Person, join, operator
from tests.test_browser import french, log_in
from tests.test_office import balance as ledger_balance
from tests.test_office import cash_in, deposit
from tests.test_office import state as office_state
from tests.test_reconversion import state as reconversion_state

# Fixtures: `chromium`, `open_browser` and `sou_js` (a page holding sou.js).
pytest_plugins = ["tests.browser"]

Browser = Callable[..., Page]


def logged_in(open_browser: Browser, email: str, landing: str) -> Page:
    """A new browser, logged in through the login page, on the page it lands on."""
    page = open_browser()
    log_in(page, email, PASSWORD)
    page.wait_for_url(re.compile(re.escape(landing) + "$"))
    return page


def submit(page: Page, form: str) -> Response:
    """Send one of the page's forms with its button, as a person does; the answer of the
    page it leads to (after the redirect that follows a success)."""
    with page.expect_navigation() as answer:
        page.click(f"{form} button[type=submit]")
    return answer.value


def flash(page: Page) -> Locator:
    return page.locator("main > p.flash")


# -- the exchange office --------------------------------------------------------------------


def record_cash_in(page: Page, member: str, amount: str) -> Response:
    page.fill("#cash-in-member", member)
    page.fill("#cash-in-amount", amount)
    return submit(page, "#cash-in-form")


def form_fields(page: Page, form: str) -> dict[str, str]:
    """What the form would send (its hidden request id and CSRF token included)."""
    fields: dict[str, str] = page.evaluate(
        "(id) => Object.fromEntries(new FormData(document.getElementById(id)))", form
    )
    return fields


def test_office_credits_members_by_id_and_email_and_refuses_in_french(
    open_browser: Browser, village: TestClient
) -> None:
    camille, louis = join(village, "Camille"), join(village, "Louis")
    treasurer = operator(village, "treasurer")
    page = logged_in(open_browser, OPERATORS["office"][0], "/office")
    expect(page.locator("h1")).to_have_text(f"{french('Exchange office')} · mairie")
    expect(page.locator("#till")).to_have_text("0,00 EUR")
    credited = french("Credited {amount} to {name} ({member}).")

    answer = record_cash_in(page, camille.id, "10")
    assert answer.status == 200 and re.search(r"/office\?cash_in=\d+$", page.url)
    expect(flash(page)).to_have_text(
        credited.format(amount="10,00 SOU", name="Camille", member=camille.id)
    )
    expect(page.locator("#till")).to_have_text("10,00 EUR")
    record_cash_in(page, louis.member["email"], "20,50")
    expect(flash(page)).to_have_text(
        credited.format(amount="20,50 SOU", name="Louis", member=louis.id)
    )
    expect(page.locator("#till")).to_have_text("30,50 EUR")
    expect(page.locator("#cash-ins tbody tr")).to_have_count(2)
    expect(page.locator("#cash-ins tbody tr").first).to_contain_text(louis.id)
    assert (camille.balance(), louis.balance()) == (1_000, 2_050)
    assert ledger_balance(village, "office:mairie:cash") == 3_050
    assert louis.get("/api/v1/wallet/history").json()["items"][0]["kind"] == "topup"

    before = office_state(village)
    refusals = [
        (
            "personne-0000",
            "5",
            404,
            french("There is no member with this id."),
        ),
        (
            camille.id,
            "12,345",
            422,
            french("Write the amount in euros, like 20 or 20,50 (at most 2 decimals)."),
        ),
        (camille.id, "0", 422, french("The amount must be a whole number of cents above zero.")),
        (
            treasurer.id,
            "5",
            422,
            french("Operators have no wallet: only a member can be credited."),
        ),
    ]
    for member, amount, status, message in refusals:
        answer = record_cash_in(page, member, amount)
        assert answer.status == status, (member, amount)
        expect(flash(page)).to_have_text(message)
        expect(flash(page)).to_have_class(re.compile(r"\berror\b"))
        expect(page.locator("#cash-in-member")).to_have_value(member)  # what was typed stays
        expect(page.locator("#cash-in-amount")).to_have_value(amount)
        expect(page.locator("#till")).to_have_text("30,50 EUR")
    assert office_state(village) == before


def test_the_same_cash_in_form_sent_twice_credits_once(
    open_browser: Browser, village: TestClient
) -> None:
    camille = join(village, "Camille")
    page = logged_in(open_browser, OPERATORS["office"][0], "/office")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    first_answer: list[str] = []

    def answer_lost(route: Any) -> None:
        """The node records the cash-in, but its answer never reaches the browser."""
        if route.request.method == "POST" and not first_answer:
            first_answer.append(route.fetch(max_redirects=0).headers["location"])
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/office", answer_lost)
    page.fill("#cash-in-member", camille.id)
    page.fill("#cash-in-amount", "7,30")
    page.click("#cash-in-form button[type=submit]")
    page.wait_for_url(lambda url: url.startswith("chrome-error:"))
    assert camille.balance() == 730  # recorded, though the operator saw an error
    page.reload()  # the browser sends the same form again, its request id with it
    page.wait_for_url(re.compile(r"/office\?cash_in=\d+$"))
    assert len(sent) == 2 and page.url.endswith(first_answer[0])
    expect(flash(page)).to_have_text(
        french("Credited {amount} to {name} ({member}).").format(
            amount="7,30 SOU", name="Camille", member=camille.id
        )
    )
    expect(page.locator("#till")).to_have_text("7,30 EUR")
    page.reload()  # the page after a success is a plain address: reloading sends nothing
    expect(page.locator("#till")).to_have_text("7,30 EUR")
    assert len(sent) == 2 and camille.balance() == 730
    assert ledger_balance(village, "office:mairie:cash") == 730
    history = camille.get("/api/v1/wallet/history").json()["items"]
    assert [item["amount"] for item in history] == [730]
    expect(page.locator("#cash-ins tbody tr")).to_have_count(1)

    record_cash_in(page, camille.id, "7,30")  # a new form: the same cash again is a new one
    expect(page.locator("#till")).to_have_text("14,60 EUR")
    assert camille.balance() == 1_460


def test_office_deposits_its_till_and_the_treasurer_reconciles_it(
    open_browser: Browser, village: TestClient
) -> None:
    camille = join(village, "Camille")
    page = logged_in(open_browser, OPERATORS["office"][0], "/office")
    record_cash_in(page, camille.id, "30")
    reserve = ledger_balance(village, "reserve:digital")

    page.fill("#deposit-amount", "25")
    page.fill("#deposit-slip", "BORD-17")
    resent = form_fields(page, "deposit-form")
    answer = submit(page, "#deposit-form")
    assert answer.status == 200
    found = re.search(r"/office\?deposit=(\d+)$", page.url)
    assert found, page.url
    deposit_id = int(found.group(1))
    expect(flash(page)).to_have_text(
        french("Deposit of {amount} recorded (slip {slip}).").format(
            amount="25,00 EUR", slip="BORD-17"
        )
    )
    expect(page.locator("#till")).to_have_text("5,00 EUR")
    row = page.locator("#deposits tbody tr").first
    expect(row).to_contain_text("BORD-17")
    expect(row).to_contain_text(french("Not yet reconciled"))
    assert ledger_balance(village, "reserve:digital") == reserve + 2_500
    again = page.request.post("/office", form=resent)  # the same form, sent again
    assert again.ok and again.url.endswith(f"/office?deposit={deposit_id}")
    assert ledger_balance(village, "office:mairie:cash") == 500

    before = office_state(village)
    page.fill("#deposit-amount", "5,01")
    page.fill("#deposit-slip", "BORD-18")
    assert submit(page, "#deposit-form").status == 409
    # The till's figure comes as "5.00 EUR" in every language for now (plain_euros); the
    # French way, "5,00 EUR", is as good.
    short = re.escape(
        french("The till holds only {available}: a deposit cannot be more than that.")
    ).replace(re.escape("{available}"), r"5[.,]00 EUR")
    expect(flash(page)).to_have_text(re.compile(f"^{short}$"))
    expect(page.locator("#deposit-amount")).to_have_value("5,01")
    expect(page.locator("#deposit-slip")).to_have_value("BORD-18")
    assert office_state(village) == before

    treasurer = logged_in(open_browser, OPERATORS["treasurer"][0], "/treasurer")
    treasurer.click("a[href='/treasurer/offices']")
    treasurer.wait_for_url("**/treasurer/offices")
    mairie = treasurer.locator("#office-mairie")
    expect(mairie).to_contain_text("BORD-17")
    form = f"#reconcile-{deposit_id}"
    expect(treasurer.locator(form)).to_contain_text("25,00 EUR")
    treasurer.fill(f"#bank-ref-{deposit_id}", "RELEVE 2026-11 L4")
    reconciliation = form_fields(treasurer, form[1:])
    assert submit(treasurer, form).status == 200
    expect(flash(treasurer)).to_have_text(
        french("Deposit {id} reconciled with {bank_ref}.").format(
            id=deposit_id, bank_ref="RELEVE 2026-11 L4"
        )
    )
    expect(treasurer.locator(form)).to_have_count(0)
    expect(mairie).to_contain_text(french("Every deposit of this office is reconciled."))
    twice = treasurer.request.post("/treasurer/offices", form=reconciliation)  # sent again
    assert twice.status == 409
    assert french("This deposit was already reconciled with the bank.") in twice.text()
    seen = operator(village, "office").get("/api/v1/office").json()["deposits"]
    assert [(d["transfer_id"], d["bank_ref"]) for d in seen] == [(deposit_id, "RELEVE 2026-11 L4")]

    page.goto("/office")
    row = page.locator("#deposits tbody tr").first
    expect(row).not_to_contain_text(french("Not yet reconciled"))
    expect(row).to_contain_text(french("Reconciled"))


# -- reconversion ---------------------------------------------------------------------------


def merchant_in_browser(open_browser: Browser, merchant: Person) -> Page:
    """The merchant opens the reconversion page, logs in on the way, and lets this browser
    make its own signing key there (the key `join` gave them is not this device's)."""
    page = open_browser()
    page.goto("/reconversion")
    page.wait_for_url(re.compile(r"/login\?next=%2Freconversion$"))
    page.fill("#email", merchant.member["email"])
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/reconversion")
    expect(page.locator("#no-key")).to_be_visible()
    return page


def make_key(page: Page) -> None:
    page.click("#make-key")
    expect(page.locator("#done")).to_have_text(french("This device can now sign your requests."))
    expect(page.locator("#no-key")).to_be_hidden()


def ask(page: Page, amount: str) -> None:
    page.fill("#amount", amount)
    page.click("#reconversion-form button[type=submit]")


def request_row(page: Page, request_id: int) -> Locator:
    return page.locator(f'#requests tbody tr[data-id="{request_id}"]')


def test_merchant_reconverts_and_the_treasurer_pays_then_rejects(
    open_browser: Browser, village: TestClient
) -> None:
    merchant, office = join(village, "Boulangerie", "merchant"), operator(village, "office")
    assert cash_in(office, merchant.id, 10_000).status_code == 201
    assert deposit(office, 10_000).status_code == 201  # the reserve holds the euros
    page = merchant_in_browser(open_browser, merchant)
    expect(page.locator("#balance")).to_have_text("100,00 SOU")

    ask(page, "40")  # no key on this device yet: nothing is signed, nothing taken
    expect(page.locator("#reconversion-form .outcome")).to_have_text(
        french("This device has no key to sign with: use it to sign first (above).")
    )
    make_key(page)
    keys = merchant.get("/api/v1/me/keys").json()
    mine = page.evaluate("(id) => Sou.deviceKey(id).then((k) => k.keyId)", merchant.id)
    assert mine in [k["key_id"] for k in keys] and len(keys) == 2

    page.fill("#amount", "")
    page.locator("#amount").press_sequentially("40")  # the quote follows the typing
    expect(page.locator("#quote")).to_have_text(
        french("Fee {fee}: you will receive {net}.").format(fee="1,20 SOU", net="38,80 EUR")
    )
    page.click("#reconversion-form button[type=submit]")
    expect(page.locator("#done")).to_have_text(
        french(
            "Request recorded: {amount} left your wallet; the treasurer will send you {net}."
        ).format(amount="40,00 SOU", net="38,80 EUR")
    )
    expect(page.locator("#balance")).to_have_text("60,00 SOU")
    first = merchant.get("/api/v1/reconversions").json()[0]
    assert (first["amount"], first["fee"], first["net"], first["status"]) == (
        4_000,
        120,
        3_880,
        "pending",
    )
    row = request_row(page, first["id"])
    expect(row).to_have_attribute("data-status", "pending")
    expect(row).to_contain_text(french("Waiting for payment"))
    expect(row).to_contain_text("38,80 EUR")
    assert merchant.balance() == 6_000
    with village.app.state.node.ledger.reading() as conn:  # type: ignore[attr-defined]
        redemption = ledger_repo.transfers_by_id(conn, [first["redemption_id"]])
    assert json.loads(redemption[first["redemption_id"]].order_json)["key"] == mine

    treasurer = logged_in(open_browser, OPERATORS["treasurer"][0], "/treasurer")
    card = treasurer.locator(f"#reconversion-{first['id']}")
    expect(card).to_contain_text("Chez Boulangerie")
    expect(card).to_contain_text("38,80 EUR")
    treasurer.fill(f"#bank-ref-{first['id']}", "VIR-2026-11-01")
    assert submit(treasurer, f"#paid-{first['id']}").status == 200
    expect(flash(treasurer)).to_have_text(
        french("Request {id} marked paid ({bank_ref}).").format(
            id=first["id"], bank_ref="VIR-2026-11-01"
        )
    )
    expect(treasurer.locator("#paid")).to_contain_text("VIR-2026-11-01")
    expect(treasurer.locator("#nothing-pending")).to_be_visible()
    page.reload()
    expect(row).to_have_attribute("data-status", "paid")
    expect(row).to_contain_text(f"{french('Paid')} · VIR-2026-11-01")
    expect(page.locator("#balance")).to_have_text("60,00 SOU")

    ask(page, "20")
    expect(page.locator("#balance")).to_have_text("40,00 SOU")
    second = merchant.get("/api/v1/reconversions").json()[0]
    assert second["id"] != first["id"] and second["status"] == "pending"
    treasurer.reload()
    treasurer.fill(f"#reason-{second['id']}", "IBAN manquant")
    assert submit(treasurer, f"#reject-{second['id']}").status == 200
    expect(flash(treasurer)).to_have_text(
        french("Request {id} rejected: the units went back.").format(id=second["id"])
    )
    expect(treasurer.locator("#rejected")).to_contain_text("IBAN manquant")
    page.reload()
    expect(request_row(page, second["id"])).to_have_attribute("data-status", "rejected")
    expect(request_row(page, second["id"])).to_contain_text(f"{french('Rejected')} · IBAN manquant")
    expect(page.locator("#balance")).to_have_text("60,00 SOU")  # fee included
    assert merchant.balance() == 6_000
    assert ledger_balance(village, "payouts:pending") == 0


def test_the_quote_as_the_merchant_types_and_refusals_in_french(
    open_browser: Browser, village: TestClient, node: Any
) -> None:
    node.settings.reconversion_cause_share = 50
    node.settings.cause_name = "l’école"
    merchant, office = join(village, "Epicerie", "merchant"), operator(village, "office")
    assert cash_in(office, merchant.id, 5_000).status_code == 201  # still in the till
    page = merchant_in_browser(open_browser, merchant)
    make_key(page)
    expect(page.locator("#fee-policy")).to_contain_text(
        french("{share} % of the fee goes to {cause}, the rest to the association.").format(
            share=50, cause="l’école"
        )
    )
    quote = page.locator("#quote")
    page.locator("#amount").press_sequentially("10,01")
    expect(quote).to_have_text(
        french("Fee {fee} (of which {cause_fee} for the cause): you will receive {net}.").format(
            fee="0,31 SOU", cause_fee="0,15 SOU", net="9,70 EUR"
        )
    )
    expect(quote).to_have_class("muted")
    typed = [
        ("12,345", french("At most two decimals: the smallest amount is one cent.")),
        ("0", french("The amount must be more than zero.")),
        ("douze", french("Write the amount as a number, for example 100.50.")),
        ("12 50", french("Write the amount as a number, for example 100.50.")),  # not 1 250
        (
            "10000,01",
            french("This is more than the largest amount allowed ({max}).").format(
                max="10\u202f000,00 SOU"
            ),
        ),
        ("0,01", french("This amount is too small to reconvert: the fee takes it all.")),
    ]
    for text, message in typed:
        page.fill("#amount", text)
        expect(quote).to_have_text(message)
        expect(quote).to_have_class(re.compile(r"\berror\b"))
    page.fill("#amount", "1\u202f000")  # a thousand, as the node writes amounts
    expect(quote).to_have_text(
        french("Fee {fee} (of which {cause_fee} for the cause): you will receive {net}.").format(
            fee="30,00 SOU", cause_fee="15,00 SOU", net="970,00 EUR"
        )
    )

    # Units bought at the office are backed by its till until the cash reaches the bank.
    before = reconversion_state(village)
    ask(page, "50")
    expect(page.locator("#reconversion-form .outcome")).to_have_text(
        french(
            "The association's bank reserve cannot cover this reconversion right now: "
            "try a smaller amount, or ask the treasurer."
        )
    )
    expect(page.locator("#no-requests")).to_be_visible()
    assert reconversion_state(village) == before
    assert deposit(office, 5_000).status_code == 201
    page.click("#reconversion-form button[type=submit]")  # asked again: now covered
    expect(page.locator("#done")).to_be_visible()
    expect(page.locator("#balance")).to_have_text("0,00 SOU")
    expect(page.locator("#requests tbody tr")).to_have_count(1)
    done = merchant.get("/api/v1/reconversions").json()
    assert [(r["amount"], r["fee"], r["cause_fee"]) for r in done] == [(5_000, 150, 75)]


# -- the top-up page without Stripe -------------------------------------------------------


def test_top_up_page_without_stripe_shows_residents_the_offices_and_the_admin_the_setup(
    open_browser: Browser, village: TestClient, node: Any, live_site: str
) -> None:
    node.settings.stripe_secret_key = node.settings.stripe_webhook_secret = ""
    camille = join(village, "Camille")
    page = logged_in(open_browser, camille.member["email"], "/wallet")
    page.click("a[href='/topup']")
    page.wait_for_url("**/topup")
    card = page.locator("#card-topup")
    expect(page.locator("#card-unavailable")).to_have_text(
        french("Card top-ups are not available yet; here are the exchange offices.")
    )
    expect(page.locator("#card-form")).to_have_count(0)
    # The node's configuration is the admin's business, not the resident's.
    expect(page.locator("code", has_text="SOU_STRIPE")).to_have_count(0)
    expect(page.locator("#webhook-url")).to_have_count(0)
    expect(card).not_to_contain_text("webhook")
    expect(page.locator("#office-topup #wallet-id")).to_have_text(camille.id)
    expect(page.locator("#offices")).to_contain_text("mairie")

    admin = logged_in(open_browser, OPERATORS["admin"][0], "/")
    admin.click("a[href='/admin/cards']")
    admin.wait_for_url("**/admin/cards")
    setup = admin.locator("#card-setup")
    expect(admin.locator("#card-unavailable")).to_have_text(
        french("Card top-ups are not set up on this node yet.")
    )
    expect(setup).to_contain_text(
        french(
            "The association's admin turns them on by giving the node its Stripe keys, as "
            "settings (environment variables or sou.toml), then restarting it:"
        )
    )
    for setting in (
        "SOU_STRIPE_SECRET_KEY",
        "SOU_STRIPE_PUBLISHABLE_KEY",
        "SOU_STRIPE_WEBHOOK_SECRET",
    ):
        expect(setup.locator("code", has_text=setting)).to_have_count(1)
    expect(admin.locator("#webhook-url")).to_have_text(f"{live_site}/stripe/webhook")


# -- who sees what ------------------------------------------------------------------------

ROLE_PAGES = ("/wallet", "/reconversion", "/office", "/treasurer")


def nav_links(page: Page) -> set[str]:
    hrefs = page.locator("header nav a:not(.lang)").evaluate_all(
        "(links) => links.map((a) => a.pathname)"
    )
    return {href for href in hrefs if href in ROLE_PAGES}


def refused(page: Page, path: str, message: str) -> None:
    answer = page.goto(path)
    assert answer is not None and answer.status == 403, path
    expect(page.locator("h1")).to_have_text(french("This did not work"))
    expect(page.locator("main .flash.error")).to_have_text(message)


def test_each_role_sees_its_own_links_and_is_refused_the_others_pages(
    open_browser: Browser, village: TestClient, node: Any
) -> None:
    not_yours = french("Your role does not allow this.")
    merchants_only = french("Only merchants can reconvert units to euros here.")
    camille = join(village, "Camille")
    resident = logged_in(open_browser, camille.member["email"], "/wallet")
    assert nav_links(resident) == {"/wallet"}
    for path in ("/office", "/treasurer", "/treasurer/offices"):
        refused(resident, path, not_yours)
        assert nav_links(resident) == {"/wallet"}
    refused(resident, "/reconversion", merchants_only)

    shop = join(village, "Boulangerie", "merchant")
    merchant = logged_in(open_browser, shop.member["email"], "/wallet")
    assert nav_links(merchant) == {"/wallet", "/reconversion"}
    refused(merchant, "/office", not_yours)
    refused(merchant, "/treasurer", not_yours)

    office = logged_in(open_browser, OPERATORS["office"][0], "/office")
    assert nav_links(office) == {"/office"}
    refused(office, "/treasurer/offices", not_yours)
    refused(office, "/topup", french("Operators have no wallet."))

    treasurer = logged_in(open_browser, OPERATORS["treasurer"][0], "/treasurer")
    assert nav_links(treasurer) == {"/treasurer"}
    refused(treasurer, "/office", not_yours)
    refused(treasurer, "/reconversion", not_yours)

    admin = logged_in(open_browser, OPERATORS["admin"][0], "/")
    assert nav_links(admin) == set()
    refused(admin, "/office", not_yours)

    node.settings.residents_may_reconvert = True  # the association lets residents reconvert
    resident.goto("/wallet")
    assert nav_links(resident) == {"/wallet", "/reconversion"}
    answer = resident.goto("/reconversion")
    assert answer is not None and answer.status == 200

    visitor = open_browser()
    visitor.goto("/office")
    visitor.wait_for_url(re.compile(r"/login\?next=%2Foffice$"))
    assert nav_links(visitor) == set()


# -- the amount helpers every page uses (sou.js), in Chromium itself ---------------------

FRENCH_AMOUNTS = {"decimal": ",", "group": "\u202f", "currency": "SOU"}
MESSAGES = {"badAmount": "bad", "decimals": "decimals", "zero": "zero", "tooLarge": "max {max}"}


def parsed(page: Page, text: str, max_amount: int = 1_000_000) -> int | str:
    """Sou.parseCents of `text`: the cents, or the refusal's message."""
    options = {"maxAmount": max_amount, "messages": MESSAGES, **FRENCH_AMOUNTS}
    result: int | str = page.evaluate(
        "([text, options]) => { try { return Sou.parseCents(text, options); }"
        " catch (error) { return error.message; } }",
        [text, options],
    )
    return result


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("12,50", 1_250),
        ("12.5", 1_250),
        (" 12 ", 1_200),
        ("0,01", 1),
        ("007", 700),
        ("1 000,50", 100_050),
        ("1\u202f000", 100_000),
        ("10\u00a0000,00", 1_000_000),
        ("10000", 1_000_000),
        ("10000,01", "max 10\u202f000,00 SOU"),
        ("99999999999999", "max 10\u202f000,00 SOU"),
        ("9999999999999999", "bad"),  # more than 15 digits: no amount, as the server says
        ("12,345", "decimals"),
        ("0", "zero"),
        ("0,00", "zero"),
        ("12 50", "bad"),  # a space only groups thousands
        ("1 00", "bad"),
        ("12,", "bad"),
        (",5", "bad"),
        ("-1", "bad"),
        ("+1", "bad"),
        ("1e3", "bad"),
        ("1,000.50", "bad"),
        ("douze", "bad"),
        ("", "bad"),
        ("١٢", "bad"),
        ("Infinity", "bad"),
    ],
)
def test_sou_parse_cents(sou_js: Page, text: str, cents: int | str) -> None:
    assert parsed(sou_js, text) == cents


def test_sou_parse_cents_is_exact_near_the_largest_safe_integer(sou_js: Page) -> None:
    top = 2**53 - 1  # "90071992547409,91" in a float would not stay exact
    assert parsed(sou_js, "90071992547409,91", top) == top
    assert (
        parsed(sou_js, "90071992547409,92", top)
        == "max 90\u202f071\u202f992\u202f547\u202f409,91 SOU"
    )


def test_sou_format_cents_and_fill(sou_js: Page) -> None:
    def formatted(cents: int, options: dict[str, str]) -> str:
        result: str = sou_js.evaluate("([c, o]) => Sou.formatCents(c, o)", [cents, options])
        return result

    assert formatted(123_450, FRENCH_AMOUNTS) == "1\u202f234,50 SOU"
    assert formatted(5, FRENCH_AMOUNTS) == "0,05 SOU"
    assert formatted(-1_250, {"decimal": ".", "group": ",", "currency": "EUR"}) == "−12.50 EUR"
    assert formatted(100_000_000, {"decimal": ".", "group": ","}) == "1,000,000.00"
    refused = sou_js.evaluate(
        "() => { try { Sou.formatCents(1.5); } catch (e) { return e.name; } }"
    )
    assert refused == "TypeError"  # a float is never an amount
    filled = sou_js.evaluate(
        "() => Sou.fill('{amount} to {to}, not {toString}', {amount: '$& 1', to: 'x'})"
    )
    assert filled == "$& 1 to x, not {toString}"
