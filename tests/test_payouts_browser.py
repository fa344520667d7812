"""The payouts pages in a real Chromium (a 360 px phone): a merchant records their bank
account, signed by a key made in this browser, and changes it; the treasurer makes the
SEPA transfer file, downloads it, and marks it paid."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import defusedxml.ElementTree as SafeTree
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from tests.conftest import OPERATORS, PASSWORD
from tests.people import join, operator
from tests.test_browser import french, log_in
from tests.test_office import cash_in, deposit
from tests.test_payouts import DEBTOR_BIC, DEBTOR_IBAN, IBAN, NS, OTHER_BIC, OTHER_IBAN

pytest_plugins = ["tests.browser"]

Browser = Callable[..., Page]


def record(page: Page, iban: str, bic: str, holder: str) -> None:
    page.fill("#iban", iban)
    page.fill("#bic", bic)
    page.fill("#holder", holder)
    page.click("#details-form button[type=submit]")


def test_a_merchant_records_the_account_and_the_treasurer_downloads_the_file(
    open_browser: Browser, village: TestClient, node: Any
) -> None:
    settings = node.plugin_settings("payouts")
    settings.debtor_name, settings.debtor_iban, settings.debtor_bic = (
        "Association Sou",
        DEBTOR_IBAN,
        DEBTOR_BIC,
    )
    merchant, office = join(village, "Boulangerie", "merchant"), operator(village, "office")
    assert cash_in(office, merchant.id, 10_000).status_code == 201
    assert deposit(office, 10_000).status_code == 201
    asked = merchant.post(
        "/api/v1/reconversions", json=merchant.order("redemption", amount=4_000, fee=120)
    )
    assert asked.status_code == 201, asked.text
    request = asked.json()

    page = open_browser()
    page.goto("/bank-details")
    page.wait_for_url(re.compile(r"/login\?next=%2Fbank-details$"))
    page.fill("#email", merchant.member["email"])
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/bank-details")
    expect(page.locator("#no-details")).to_be_visible()
    expect(page.locator("#no-key")).to_be_visible()
    page.click("#make-key")
    expect(page.locator("#done")).to_have_text(
        french("This device can now sign your bank details.")
    )

    record(page, "FR76 3000 6000 0112 3456 7890 188", "AGRIFRPP", "Boulangerie Martin")
    expect(page.locator("#details-form .outcome")).to_contain_text("Cet IBAN n’est pas valide")
    assert merchant.get("/api/v1/me/bank-details").json()["history"] == []

    record(page, "fr76 3000 6000 0112 3456 7890 189", "agrifrpp", "Boulangerie Martin")
    page.wait_for_url("**/bank-details?saved=1")
    expect(page.locator("#current-iban")).to_have_text("FR76 3000 6000 0112 3456 7890 189")
    expect(page.locator("main > p.flash.ok")).to_have_text(
        french("Bank details recorded (version {version}).").format(version=1)
    )
    record(page, OTHER_IBAN, OTHER_BIC, "Martin Boulangerie")
    page.wait_for_url("**/bank-details?saved=2")
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    expect(page.locator('#versions tr[data-version="2"]')).to_contain_text("FR76 3000 6000")
    mine = page.evaluate("(id) => Sou.deviceKey(id).then((k) => k.keyId)", merchant.id)
    history = merchant.get("/api/v1/me/bank-details").json()["history"]
    assert [(v["iban"], v["key_id"]) for v in history] == [(OTHER_IBAN, mine), (IBAN, mine)]
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    treasurer = open_browser()
    log_in(treasurer, OPERATORS["treasurer"][0], PASSWORD)
    treasurer.wait_for_url(re.compile(r"/treasurer$"))
    treasurer.goto("/treasurer/payouts")
    expect(treasurer.locator(f'#ready tr[data-id="{request["id"]}"]')).to_contain_text("38,80")
    with treasurer.expect_navigation():
        treasurer.click("#make-batch button[type=submit]")
    batch = operator(village, "treasurer").get("/api/v1/treasury/payouts").json()["batches"][0]
    card = treasurer.locator(f"#batch-{batch['id']}")
    expect(card).to_have_attribute("data-status", "unpaid")
    assert treasurer.evaluate("document.documentElement.scrollWidth") <= 360
    with treasurer.expect_download() as downloading:
        card.locator("a.download").click()
    xml = open(downloading.value.path(), "rb").read()  # noqa: SIM115
    root = SafeTree.fromstring(xml)
    header = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", NS)
    assert header.findtext("p:NbOfTxs", namespaces=NS) == "1"
    assert Decimal(header.findtext("p:CtrlSum", namespaces=NS)) == Decimal("38.80")
    assert root.findtext(".//p:CdtTrfTxInf/p:CdtrAcct/p:Id/p:IBAN", namespaces=NS) == OTHER_IBAN
    again = operator(village, "treasurer").get(batch["file"])
    assert again.content == xml  # the same file, downloaded again

    card.locator("input[name=bank_ref]").fill("VIR-LOT-7")
    with treasurer.expect_navigation():
        card.locator("form.paid button[type=submit]").click()
    expect(treasurer.locator("main > p.flash")).to_have_text(
        french("Batch {id} marked paid.").format(id=batch["id"])
    )
    expect(treasurer.locator(f"#batch-{batch['id']}")).to_have_attribute("data-status", "paid")
    paid = merchant.get("/api/v1/reconversions").json()[0]
    assert (paid["status"], paid["bank_ref"]) == ("paid", "VIR-LOT-7")
