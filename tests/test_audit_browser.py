"""The treasurer's audit page in a real browser, in French, at a phone's width: the treasurer
starts a run, follows its progress without reloading and sees it finish; the page, with
findings and without, passes axe-core under the node's Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from audits.models import audit_runs
from tests.people import fund, join, operator
from tests.test_audit_runs import _finished_run
from tests.test_pos_browser import _log_in

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`


def fits_the_phone(page: Page) -> bool:
    return int(page.evaluate("document.documentElement.scrollWidth")) <= 360


@pytest.fixture
def quiet(node: Any, village: TestClient) -> TestClient:
    """The live node without its scheduler, whose audit job would take the running place."""
    node.scheduler.stop()
    with node.engine.begin() as conn:
        conn.execute(audit_runs.delete())
    return village


@pytest.mark.one_database  # the page's flow; the runs' rules are tested on both databases
def test_the_treasurer_starts_an_audit_and_sees_it_finish(
    open_browser: Callable[..., Page], quiet: TestClient
) -> None:
    fund(quiet, join(quiet, "Camille"), 2_000)
    treasurer = operator(quiet, "treasurer")
    phone = open_browser()
    _log_in(phone, treasurer, "/treasurer/audit")
    expect(phone.locator("h1")).to_have_text("Audit du grand livre")
    expect(phone.locator("#no-audit")).to_be_visible()
    expect(phone.locator("#audit-progress")).to_be_hidden()
    phone.click("#start-resumed button")
    said = phone.locator("#audit-said")
    expect(said).to_have_attribute("data-status", "ok")
    expect(said).to_have_text("Terminé\u202f: tout est en ordre.")
    expect(phone.locator("#start-full button")).to_be_enabled()
    assert phone.url.endswith("/treasurer/audit")  # followed without reloading
    phone.click("#audit-result")
    expect(phone.locator("#last-outcome")).to_have_text("Tout est en ordre.")
    expect(phone.locator("#last-audit")).to_contain_text("Audit complet")
    expect(phone.locator("#backing")).to_contain_text("20,00 EUR")
    expect(phone.locator("#past-runs li")).to_have_count(1)
    assert fits_the_phone(phone)

    # What is new, now: the next run resumes from the state the first left.
    phone.click("#start-resumed button")
    expect(said).to_have_attribute("data-status", "ok")
    phone.click("#audit-result")
    expect(phone.locator("#last-audit")).to_contain_text("Repris")
    expect(phone.locator("#past-runs li")).to_have_count(2)


@pytest.mark.one_database
def test_the_audit_page_is_accessible_under_the_policy(
    open_browser: Callable[..., Page], quiet: TestClient, node: Any
) -> None:
    """Nothing blocked nor said in the console, and no serious axe-core violation: without an
    audit, with a clean one, and with an emergency and the ACPR warning; in both languages."""
    from tests.test_pages_browser_walk import Walk

    treasurer = operator(quiet, "treasurer")
    for lang in ("fr", "en"):
        walk = Walk(lang)
        page = walk.watch(open_browser("fr-FR" if lang == "fr" else "en-GB"))
        _log_in(page, treasurer, "/treasurer/audit")
        walk.visit(page, ["/treasurer/audit"])
        assert not walk.problems, "\n".join(walk.problems)
    _finished_run(node, [], payments_12_months=10_000_000)
    _finished_run(
        node,
        [
            {"check": "backing", "message": "900 units, 800 in reserve", "severity": "emergency"},
            {"check": "balance", "message": "member:x stored 5, replayed 4", "severity": "error"},
            {"check": "acpr", "message": "85% of the ceiling", "severity": "warning"},
        ],
        payments_12_months=85_000_000,
        backing=800,
        outstanding=900,
    )
    walk = Walk("fr")
    page = walk.watch(open_browser())
    _log_in(page, treasurer, "/treasurer/audit")
    walk.visit(page, ["/treasurer/audit"])
    expect(page.locator("#emergency")).to_be_visible()
    expect(page.locator("#acpr-share")).to_contain_text("85")
    assert fits_the_phone(page)
    assert not walk.problems, "\n".join(walk.problems)


@pytest.mark.one_database
def test_a_finding_is_read_in_french_and_in_english(
    open_browser: Callable[..., Page], quiet: TestClient, node: Any
) -> None:
    """A member's stored balance raised behind the ledger's back: the treasurer's full audit
    says so in the reader's language, with the figures the audit gave."""
    from tests.test_audit_runs import _balance_raised

    camille = join(quiet, "Camille")
    fund(quiet, camille, 2_000)
    code = camille.account
    _balance_raised(node, code)
    treasurer = operator(quiet, "treasurer")
    phone = open_browser()
    _log_in(phone, treasurer, "/treasurer/audit")
    phone.click("#start-full button")
    expect(phone.locator("#audit-said")).to_have_attribute("data-status", "findings")
    phone.click("#audit-result")
    line = phone.locator("#findings li.finding", has_text=code)
    expect(line).to_contain_text(
        f"compte {code}\u202f: solde enregistré 2001, l’historique donne 2000"
    )
    expect(line).to_contain_text("Le solde d’un compte diffère de la somme de ses mouvements.")
    assert fits_the_phone(phone)
    english = open_browser("en-GB")
    _log_in(english, treasurer, "/treasurer/audit")
    expect(english.locator("#findings li.finding", has_text=code)).to_contain_text(
        f"account {code}: stored balance 2001, history gives 2000"
    )
