"""The treasurer's reconciliation (audits/reconciliation): bank statements (CAMT.053, CSV)
and Stripe's balance (CSV export, API through localstripe) matched to the ledger's euros.

Each test makes the ledger movements the crafted statements in tests/statements/ describe
(`bank_world`, `stripe_world`), imports, and checks what the treasurer would see: what is
matched, what is not on each side, the near misses, that a second import adds nothing, that
a hostile file is refused with a precise 4xx and nothing written.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from audits.reconciliation import plugin as reconciliation_plugin
from audits.reconciliation import repository, service
from audits.reconciliation.models import lines, matches, statements
from audits.reconciliation.parsed import cents
from ledger.operations import NODE, TREASURER
from runtime.signing import post, sign_as
from tests.people import Person, join, operator

# Fixtures: localstripe's (`stripe_node`, `localstripe`), the browser's (`open_browser`).
pytest_plugins = ["tests.stripe_server", "tests.browser"]

HERE = Path(__file__).parent / "statements"
_serial = itertools.count(1)


def crafted(name: str) -> bytes:
    """A crafted statement, its dates put near today (when the tests' ledger moves)."""
    text = (HERE / name).read_text(encoding="utf-8")
    today = datetime.now(UTC).date()
    for offset in (20, 2, 1, 0):
        day = today + timedelta(days=offset)
        text = text.replace(f"@D{offset}@", day.isoformat())
        text = text.replace(f"@F{offset}@", day.strftime("%d/%m/%Y"))
    return text.encode("utf-8")


def sign(node: Any, owner: str, kind: str, **fields: Any) -> int:
    signed = sign_as(node, owner, kind, f"reco-{kind}-{next(_serial)}", **fields)
    return int(post(node, signed).transfer_id)


def local(node: Any) -> str:
    return str(node.ledger.chart.local)


def bank_topup(node: Any, member: Person, amount: int, ext: str) -> int:
    return sign(
        node,
        TREASURER,
        "topup",
        to=member.account,
        amount=amount,
        currency=local(node),
        source="bank",
        ext=ext,
    )


def card_topup(node: Any, member: Person, amount: int, intent: str) -> int:
    return sign(
        node,
        NODE,
        "topup",
        to=member.account,
        amount=amount,
        currency=local(node),
        source="card",
        ext=intent,
        rule="card.paid",
    )


def bank_world(site: Any) -> dict[str, int]:
    """The ledger side of bank.camt053.xml and bank.csv."""
    node = site.app.state.node
    alice, bob = join(site, "Alice"), join(site, "Bob")
    office_cash = sign(
        node,
        "role:office:mairie",
        "topup",
        to=alice.account,
        amount=12_000,
        currency=local(node),
        source="office:mairie",
    )
    card = card_topup(node, bob, 2_700, "pi_test_reco_0")
    return {
        "office_cash": office_cash,
        "card": card,
        "alice": bank_topup(node, alice, 5_000, "VIR-ALICE-0001"),
        "deposit": sign(
            node,
            "role:office:mairie",
            "cash_deposit",
            office="mairie",
            amount=12_000,
            to="reserve:digital",
        ),
        "bob": bank_topup(node, bob, 3_000, "VIR-BOB-0002"),
        "carol": bank_topup(node, alice, 1_500, "VIR-CAROL-0003"),
        "payout": sign(node, TREASURER, "settlement", amount=2_700, ext="po_test_reco_1"),
    }


def sou_like() -> typer.Typer:
    """A `sou` with the plugin's command among others (a lone command would be the root)."""
    cli = typer.Typer()
    cli.command("version")(lambda: None)
    reconciliation_plugin.sou_commands(cli=cli)
    return cli


def treasurer_of(site: Any) -> Person:
    return operator(site, "treasurer")


def upload(person: Person, name: str, fmt: str, **query: str) -> Any:
    return person.client.post(
        "/api/v1/treasury/reconciliation/statements",
        params={"format": fmt, "name": name, **query},
        content=crafted(name),
        headers={**person.headers(), "Content-Type": "application/octet-stream"},
    )


def counts(node: Any) -> tuple[int, int, int]:
    with node.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (statements, lines, matches)
        )


# -- the bank statement -----------------------------------------------------------------------


def _by_transfer(view: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {m["movement"]["transfer_id"]: m for m in view["matched"]}


@pytest.mark.parametrize("name,fmt", [("bank.camt053.xml", "camt"), ("bank.csv", "csv")])
def test_a_bank_statement_is_matched_by_reference_then_amount_and_date(
    site: Any, name: str, fmt: str
) -> None:
    world = bank_world(site)
    treasurer = treasurer_of(site)
    answer = upload(treasurer, name, fmt)
    assert answer.status_code == 201, answer.text
    done = answer.json()
    assert done["account"] == "reserve:digital"
    view = done["view"]
    matched = _by_transfer(view)
    # Exact match by reference: the transfer's reference is in the bank's text.
    assert matched[world["alice"]]["how"] == "reference"
    assert matched[world["payout"]]["how"] == "reference"
    # No reference: the amount, two days later.
    assert matched[world["deposit"]]["how"] == "amount"
    assert view["matched_total"] == 5_000 + 12_000 + 2_700
    # Off by a cent: not matched, shown as a near miss with the difference.
    assert world["bob"] not in matched
    miss = [n for n in view["near_misses"] if n["movement"]["transfer_id"] == world["bob"]]
    assert [n["difference"] for n in miss] == [1]
    # Missing on the statement: Carol's transfer (and Bob's) are unmatched ledger movements.
    assert {m["transfer_id"] for m in view["unmatched_movements"]} == {world["carol"], world["bob"]}
    assert view["unmatched_movements_total"] == 1_500 + 3_000
    # On the statement only: the bank's fee and Bob's 30,01.
    unmatched = sorted(line["amount"] for line in view["unmatched_lines"] if not line["duplicate"])
    assert unmatched == [-999, 3_001]
    assert not view["all_matched"]


def test_a_line_twice_in_one_statement_is_matched_once_and_the_other_listed(site: Any) -> None:
    world = bank_world(site)
    view = upload(treasurer_of(site), "bank.camt053.xml", "camt").json()["view"]
    alice_lines = [m for m in view["matched"] if m["movement"]["transfer_id"] == world["alice"]]
    assert len(alice_lines) == 1
    duplicates = [line for line in view["unmatched_lines"] if line["duplicate"]]
    assert [(d["amount"], d["reference"]) for d in duplicates] == [(5_000, "BQ-0001")]
    # The pending entry is not read: it will come back booked.
    assert all(line["amount"] != 50_000 for line in view["unmatched_lines"])


def test_a_statement_imported_again_adds_nothing_and_matches_nothing_twice(site: Any) -> None:
    bank_world(site)
    treasurer = treasurer_of(site)
    first = upload(treasurer, "bank.camt053.xml", "camt").json()
    assert (first["read"], first["added"]) == (6, 6)
    _, lines_before, matches_before = counts(site.app.state.node)
    again = upload(treasurer, "bank.camt053.xml", "camt").json()
    assert (again["read"], again["added"], again["matched"]) == (6, 0, 0)
    assert counts(site.app.state.node)[1:] == (lines_before, matches_before)
    assert again["view"]["matched"] == first["view"]["matched"]


def test_two_imports_at_once_store_each_line_once(site: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    bank_world(site)
    node = site.app.state.node
    data = crafted("bank.camt053.xml")
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda _: service.import_statement(node, data, "camt"), range(2)))
    assert sorted(d.added for d in done) == [0, 6]
    assert counts(node)[1] == 6
    assert sum(d.matched for d in done) == len(done[-1].view.matched) == 3


def test_the_database_refuses_a_bank_line_twice(site: Any) -> None:
    bank_world(site)
    upload(treasurer_of(site), "bank.camt053.xml", "camt")
    node = site.app.state.node
    with node.engine.connect() as conn:
        row = dict(conn.execute(select(lines).limit(1)).mappings().one())
    row.pop("id")
    with pytest.raises(IntegrityError), node.engine.begin() as conn:
        conn.execute(insert(lines).values(**row))


def test_the_treasurer_matches_by_hand_with_a_note_and_undoes(site: Any) -> None:
    world = bank_world(site)
    treasurer = treasurer_of(site)
    view = upload(treasurer, "bank.camt053.xml", "camt").json()["view"]
    bob_line = next(line for line in view["unmatched_lines"] if line["amount"] == 3_001)
    body = {"line_id": bob_line["id"], "transfer_id": world["bob"], "note": ""}
    no_note = treasurer.post("/api/v1/treasury/reconciliation/matches", json=body)
    assert no_note.status_code == 422
    body["note"] = "Bob a versé 1 centime de trop ; remboursé en espèces."
    made = treasurer.post("/api/v1/treasury/reconciliation/matches", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["how"] == "hand"
    twice = treasurer.post("/api/v1/treasury/reconciliation/matches", json=body)
    assert twice.status_code == 409 and twice.json()["error"] == "line_matched"
    other = next(line for line in view["unmatched_lines"] if line["amount"] == -999)
    taken = treasurer.post(
        "/api/v1/treasury/reconciliation/matches", json={**body, "line_id": other["id"]}
    )
    assert taken.status_code == 409 and taken.json()["error"] == "movement_matched"
    nowhere = treasurer.post(
        "/api/v1/treasury/reconciliation/matches",
        json={**body, "line_id": other["id"], "transfer_id": world["office_cash"]},
    )
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "unknown_movement"
    shown = treasurer.get(
        "/api/v1/treasury/reconciliation", params={"account": "reserve:digital"}
    ).json()
    assert world["bob"] in _by_transfer(shown)
    assert world["bob"] not in {m["transfer_id"] for m in shown["unmatched_movements"]}
    match_id = made.json()["id"]
    undone = treasurer.delete(f"/api/v1/treasury/reconciliation/matches/{match_id}")
    assert undone.status_code == 204
    again = treasurer.delete(f"/api/v1/treasury/reconciliation/matches/{match_id}")
    assert again.status_code == 404 and again.json()["error"] == "unknown_match"
    shown = treasurer.get(
        "/api/v1/treasury/reconciliation", params={"account": "reserve:digital"}
    ).json()
    assert world["bob"] in {m["transfer_id"] for m in shown["unmatched_movements"]}


def test_an_undone_automatic_match_is_not_made_again(site: Any) -> None:
    world = bank_world(site)
    treasurer = treasurer_of(site)
    view = upload(treasurer, "bank.camt053.xml", "camt").json()["view"]
    deposit = _by_transfer(view)[world["deposit"]]
    treasurer.delete(f"/api/v1/treasury/reconciliation/matches/{deposit['id']}")
    again = upload(treasurer, "bank.csv", "csv", account="reserve:digital").json()
    assert world["deposit"] not in _by_transfer(again["view"]) or (
        _by_transfer(again["view"])[world["deposit"]]["line"]["id"] != deposit["line"]["id"]
    )


def test_the_same_amount_weeks_later_is_not_matched(site: Any) -> None:
    world = bank_world(site)
    later = (datetime.now(UTC).date() + timedelta(days=20)).strftime("%d/%m/%Y")
    data = f"Date;Libellé;Montant\n{later};REMISE ESPECES;120,00\n".encode()
    done = service.import_statement(site.app.state.node, data, "csv")
    assert done.matched == 0
    assert world["deposit"] not in {m.movement.transfer_id for m in done.view.matched}
    assert [line.amount for line in done.view.unmatched_lines] == [12_000]


# -- refusals: nothing written ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,fmt,status,code",
    [
        ("billion_laughs.xml", "camt", 422, "hostile_xml"),
        ("external_entity.xml", "camt", 422, "hostile_xml"),
        ("malformed.xml", "camt", 422, "malformed_xml"),
        ("not_camt.xml", "camt", 422, "not_camt053"),
        ("bank.csv", "camt", 422, "malformed_xml"),
        ("bank.camt053.xml", "csv", 422, "csv_header"),
        ("bank.csv", "stripe-csv", 422, "csv_header"),
    ],
)
def test_a_hostile_or_malformed_file_is_refused_and_nothing_written(
    site: Any, name: str, fmt: str, status: int, code: str
) -> None:
    treasurer = treasurer_of(site)
    before = counts(site.app.state.node)
    answer = upload(treasurer, name, fmt)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code
    assert answer.json()["message"]
    assert counts(site.app.state.node) == before


def test_only_the_treasurer_reconciles(site: Any) -> None:
    resident = join(site, "Dominique")
    answer = upload(resident, "bank.camt053.xml", "camt")
    assert answer.status_code == 403
    assert counts(site.app.state.node) == (0, 0, 0)


def test_a_stripe_csv_goes_to_a_bank_account_never(site: Any) -> None:
    answer = upload(treasurer_of(site), "stripe_balance.csv", "stripe-csv", account="reserve:paper")
    assert answer.status_code == 422 and answer.json()["error"] == "bad_account"


# -- Stripe -------------------------------------------------------------------------------------


def stripe_world(site: Any) -> dict[str, int]:
    """The ledger side of stripe_balance.csv: a card top-up, part refunded, and a payout."""
    node = site.app.state.node
    member = join(site, "Eve")
    topup = card_topup(node, member, 4_000, "pi_reco_1")
    reversal = sign(
        node,
        NODE,
        "card_reversal",
        amount=500,
        currency=local(node),
        ref=topup,
        rule="card.refunded",
        **{"from": member.account},
    )
    payout = sign(node, TREASURER, "settlement", amount=2_700, ext="po_reco_1")
    return {"topup": topup, "reversal": reversal, "payout": payout}


def test_stripe_csv_export_is_matched_to_the_clearing_account(site: Any) -> None:
    world = stripe_world(site)
    answer = upload(treasurer_of(site), "stripe_balance.csv", "stripe-csv")
    assert answer.status_code == 201, answer.text
    view = answer.json()["view"]
    assert view["account"] == "clearing:stripe"
    matched = _by_transfer(view)
    assert {t: matched[t]["how"] for t in world.values()} == dict.fromkeys(
        world.values(), "reference"
    )
    assert view["unmatched_lines"] == []
    assert view["all_matched"]


def test_stripe_balance_read_through_the_api(stripe_node: Any, localstripe: Any) -> None:
    """localstripe keeps balance transactions for charges and refunds (not payouts): a paid
    PaymentIntent's charge is read with the real `stripe` library and matched to the top-up
    by the intent's id, found through the charge."""
    from fastapi.testclient import TestClient

    from node.app import create_app

    with TestClient(
        create_app(stripe_node.settings, stripe_node), base_url="http://127.0.0.1"
    ) as site:
        member = join(site, "Frédérique")
        intent = localstripe.intent(3_300, {"member": member.id})
        localstripe.pay(intent.id)
        topup = card_topup(stripe_node, member, 3_300, intent.id)
        treasurer = treasurer_of(site)
        answer = treasurer.post("/api/v1/treasury/reconciliation/stripe")
        assert answer.status_code == 201, answer.text
        view = answer.json()["view"]
        assert _by_transfer(view)[topup]["how"] == "reference"
        again = treasurer.post("/api/v1/treasury/reconciliation/stripe").json()
        assert again["added"] == 0 and again["matched"] == 0
    settings = stripe_node.settings
    env = {
        "SOU_DATA_DIR": str(settings.data_dir),
        "SOU_DATABASE_URL": settings.database_url,
        "SOU_STRIPE_SECRET_KEY": settings.stripe_secret_key,
        "SOU_STRIPE_API_BASE": settings.stripe_api_base,
    }
    # localstripe is shared by the session: other tests' charges may be left unmatched.
    run = CliRunner().invoke(sou_like(), ["reconcile", "--stripe"], env=env)
    assert run.exit_code in (0, 1), run.output
    assert "clearing:stripe:" in run.output and ", 0 new, 0 matched now." in run.output


def test_stripe_not_set_up_is_a_clear_refusal(site: Any) -> None:
    answer = treasurer_of(site).post("/api/v1/treasury/reconciliation/stripe")
    assert answer.status_code == 409 and answer.json()["error"] == "stripe_not_set"


# -- the page ---------------------------------------------------------------------------------


def test_the_page_uploads_shows_and_matches_by_hand_in_french(site: Any) -> None:
    world = bank_world(site)
    treasurer = treasurer_of(site)
    page = treasurer.get("/treasurer/reconciliation")
    assert page.status_code == 200
    assert "Rapprochement bancaire" in page.text
    sent = treasurer.client.post(
        "/treasurer/reconciliation",
        data={"csrf": treasurer.csrf, "format": "auto", "account": ""},
        files={"statement": ("releve.xml", crafted("bank.camt053.xml"), "application/xml")},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    shown = treasurer.client.get(sent.headers["location"])
    assert "Relevé importé\u202f: 6 nouvelles lignes." in shown.text
    assert f'id="movement-{world["carol"]}"' in shown.text
    assert "écart de 0,01" in shown.text
    hostile = treasurer.client.post(
        "/treasurer/reconciliation",
        data={"csrf": treasurer.csrf, "format": "camt"},
        files={"statement": ("x.xml", crafted("billion_laughs.xml"), "application/xml")},
    )
    assert hostile.status_code == 422
    assert "entités" in hostile.text
    view = service.view(site.app.state.node, "reserve:digital")
    line = next(x for x in view.unmatched_lines if x.amount == 3_001)
    no_note = treasurer.client.post(
        "/treasurer/reconciliation/match",
        data={"csrf": treasurer.csrf, "line_id": str(line.id), "transfer_id": str(world["bob"])},
    )
    assert no_note.status_code == 422
    matched = treasurer.client.post(
        "/treasurer/reconciliation/match",
        data={
            "csrf": treasurer.csrf,
            "line_id": str(line.id),
            "transfer_id": str(world["bob"]),
            "note": "Un centime de trop",
        },
        follow_redirects=False,
    )
    assert matched.status_code == 303
    assert "Un centime de trop" in treasurer.client.get(matched.headers["location"]).text


@pytest.mark.one_database  # a page's width is the same whichever database holds its lines
def test_the_page_fits_a_phone_and_matches_by_hand_in_a_browser(
    open_browser: Any, village: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from tests.browser import PHONE
    from tests.conftest import OPERATORS, PASSWORD
    from tests.test_browser import log_in

    world = bank_world(village)
    statement = tmp_path / "releve-decembre.xml"
    statement.write_bytes(crafted("bank.camt053.xml"))
    page = open_browser()
    log_in(page, OPERATORS["treasurer"][0], PASSWORD)
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto("/treasurer/reconciliation")
    page.set_input_files("#statement", str(statement))
    page.click("#upload button[type=submit]")
    expect(page.locator(".flash")).to_contain_text("6 nouvelles lignes")
    assert int(page.evaluate("document.documentElement.scrollWidth")) <= PHONE["width"]
    line = page.locator(".line", has_text="30,01")
    line.locator("summary").click()
    line.locator("select").select_option(str(world["bob"]))
    line.locator("input[name=note]").fill("Un centime de trop, rendu en espèces")
    line.locator("button[type=submit]").click()
    expect(page.locator(".flash")).to_contain_text("Rapproché à la main")
    expect(page.locator("#matched")).to_contain_text("Un centime de trop")
    assert int(page.evaluate("document.documentElement.scrollWidth")) <= PHONE["width"]
    # A transfer file the bank booked on one line: the line once, its payouts under it.
    payouts = paid_file(village, FILE, "REMISE-TELEPHONE")
    remise = tmp_path / "remise-globale.xml"
    remise.write_bytes(camt(batch_entry(-FILE_NET, "BQ-TEL", ends_of(payouts))))
    page.set_input_files("#statement", str(remise))
    page.click("#upload button[type=submit]")
    batch = page.locator(".match.batch")
    expect(batch).to_contain_text("3 opérations passées ensemble sur cette ligne")
    expect(batch.locator(".batch-movements li")).to_have_count(3)
    expect(batch.locator(".batch-movements li").first).to_contain_text("paiement de reconversion")
    assert int(page.evaluate("document.documentElement.scrollWidth")) <= PHONE["width"]


def test_the_page_speaks_english_too(site: Any) -> None:
    page = treasurer_of(site).get("/treasurer/reconciliation", params={"lang": "en"})
    assert page.status_code == 200
    assert "Bank reconciliation" in page.text and "Import a statement" in page.text


def test_the_page_is_for_the_treasurer(site: Any) -> None:
    resident = join(site, "Gaspard")
    assert resident.get("/treasurer/reconciliation").status_code == 403


# -- the command --------------------------------------------------------------------------------


def test_sou_reconcile_says_what_is_unmatched_and_exits_accordingly(
    site: Any, node_settings: Any, tmp_path: Path
) -> None:
    bank_world(site)
    cli = sou_like()
    env = {
        "SOU_DATA_DIR": str(node_settings.data_dir),
        "SOU_DATABASE_URL": node_settings.database_url,
    }
    helped = CliRunner().invoke(cli, ["reconcile", "--help"], env=env)
    assert helped.exit_code == 0 and "--stripe" in helped.output
    statement = tmp_path / "releve.xml"
    statement.write_bytes(crafted("bank.camt053.xml"))
    run = CliRunner().invoke(cli, ["reconcile", str(statement)], env=env)
    assert run.exit_code == 1, run.output
    assert "Unmatched ledger movements: 2" in run.output
    assert "Near miss" in run.output
    hostile = tmp_path / "x.xml"
    hostile.write_bytes(crafted("external_entity.xml"))
    refused = CliRunner().invoke(cli, ["reconcile", str(hostile), "--format", "camt"], env=env)
    assert refused.exit_code == 2 and "entities" in refused.output
    missing = CliRunner().invoke(cli, ["reconcile"], env=env)
    assert missing.exit_code == 2


def test_sou_reconcile_exits_0_when_everything_matches(
    site: Any, node_settings: Any, tmp_path: Path
) -> None:
    world = stripe_world(site)
    assert world
    cli = sou_like()
    env = {
        "SOU_DATA_DIR": str(node_settings.data_dir),
        "SOU_DATABASE_URL": node_settings.database_url,
    }
    statement = tmp_path / "stripe.csv"
    statement.write_bytes(crafted("stripe_balance.csv"))
    run = CliRunner().invoke(cli, ["reconcile", str(statement), "--format", "stripe-csv"], env=env)
    assert run.exit_code == 0, run.output
    assert "Everything is matched." in run.output


# -- amounts ------------------------------------------------------------------------------------


@pytest.mark.one_database
@given(st.integers(min_value=-(10**11), max_value=10**11).filter(bool))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_written_amounts_read_back_to_the_cent(value: int) -> None:
    euros, rest = divmod(abs(value), 100)
    sign = "-" if value < 0 else ""
    grouped = f"{euros:,}".replace(",", "\u00a0")
    assert cents(f"{sign}{grouped},{rest:02d}", decimal_comma=True) == value
    assert cents(f"{sign}{euros}.{rest:02d}", decimal_comma=False) == value


@pytest.mark.one_database
@pytest.mark.parametrize("figure", ["1,234", "1.2.3,4,5", "abc", "", "1e3", "--1,00"])
def test_what_is_not_an_amount_is_refused(figure: str) -> None:
    with pytest.raises(ValueError):
        cents(figure, decimal_comma=True)


@pytest.mark.one_database
def test_keys_keep_two_identical_lines_of_one_file_apart() -> None:
    from audits.reconciliation.parsed import ParsedLine, Statement

    same = ParsedLine(booked=date(2026, 12, 1), amount=2_000, label="REMISE")
    keys = [k for k, _, _ in service.keyed(Statement([same, same]))]
    assert len(set(keys)) == 2 and keys[0].endswith("#1") and keys[1].endswith("#2")


@pytest.mark.one_database
def test_every_message_of_the_reconciliation_has_its_french() -> None:
    from tests.test_pages import ROOT, assert_all_french, python_msgids, template_msgids

    msgids = {"Bank reconciliation"}  # the menu's entry
    for name in ("errors.py", "pages.py"):
        msgids |= python_msgids(ROOT / "audits" / "reconciliation" / name)
    msgids |= template_msgids(ROOT / "web" / "templates" / "reconciliation" / "reconciliation.html")
    assert len(msgids) > 50
    assert_all_french(msgids)


# -- what a matched line confirms elsewhere ------------------------------------------------------


def test_a_cash_deposit_is_matched_by_its_paying_in_slip(site: Any) -> None:
    """The slip is in the deposit's signed order (its memo), read from the ledger: a bank
    line naming it matches that deposit, even where the amount alone would pick another."""
    from tests.test_office import cash_in, deposit

    office, member = operator(site, "office"), join(site, "Hélène")
    assert cash_in(office, member.id, 24_000).status_code == 201
    first = deposit(office, 12_000, slip="BV 2026 0142").json()["transfer_id"]
    second = deposit(office, 12_000, slip="BV-0143").json()["transfer_id"]
    today = datetime.now(UTC).date().strftime("%d/%m/%Y")
    data = (
        "Date;Libellé;Montant\n"
        f"{today};REMISE ESPECES BORDEREAU BV-0143;120,00\n"
        f"{today};REMISE ESPECES BORDEREAU BV20260142;120,00\n"
    ).encode()
    done = service.import_statement(site.app.state.node, data, "csv")
    paired = {m.movement.transfer_id: (m.line.label, m.how) for m in done.view.matched}
    assert paired == {
        second: ("REMISE ESPECES BORDEREAU BV-0143", "reference"),
        first: ("REMISE ESPECES BORDEREAU BV20260142", "reference"),
    }
    treasurer = treasurer_of(site)
    shown = treasurer.get("/api/v1/treasury/reconciliation", params={"account": "reserve:digital"})
    movements = {m["movement"]["transfer_id"]: m["movement"] for m in shown.json()["matched"]}
    assert movements[first]["slip"] == "BV 2026 0142"
    assert movements[second]["confirm_at"] == f"/treasurer/offices?deposit={second}"
    # The match reconciles the deposit where the offices' feature shows it: the page links.
    page = reading_fr(treasurer).get("/treasurer/reconciliation")
    assert "bordereau de remise BV-0143" in page.text
    assert f'href="/treasurer/offices?deposit={second}"' in page.text
    offices = reading_fr(treasurer).get(f"/treasurer/offices?deposit={second}")
    assert f'id="reconcile-{second}"' not in offices.text  # nothing left to type there
    assert 'id="deposit-shown"' in offices.text and "Rapproché de la ligne" in offices.text


def test_a_bank_line_of_a_transfer_file_confirms_its_reconversion(site: Any) -> None:
    """A reconversion paid through a transfer file: the bank books each transfer on its own
    line with its EndToEndId, which matches the payout; the page links to the file."""
    from tests.test_payouts import record, set_debtor
    from tests.test_reconversion import ask, with_units

    shop = with_units(site, 10_000)
    assert record(shop).status_code == 201
    asked = ask(shop, 10_000, 300).json()
    set_debtor(site)
    treasurer = treasurer_of(site)
    batch = treasurer.post("/api/v1/treasury/payout-batches", json={"id": "lot-reco"}).json()
    paid = treasurer.post(
        f"/api/v1/treasury/payout-batches/{batch['id']}/paid", json={"bank_ref": "LOT-77"}
    )
    assert paid.status_code == 200, paid.text
    today = datetime.now(UTC).date().strftime("%d/%m/%Y")
    data = (
        "Date;Libellé;Référence;Montant\n"
        f"{today};VIR SEPA BOULANGERIE SOU-RECONVERSION-{asked['id']};BQ-77;-97,00\n"
    ).encode()
    done = service.import_statement(site.app.state.node, data, "csv")
    payouts = [m for m in done.view.matched if m.movement.kind == "payout"]
    assert len(payouts) == 1, (done.view.unmatched_lines, done.view.unmatched_movements)
    payout = payouts[0]
    assert (payout.how, payout.movement.reconversion) == ("reference", asked["id"])
    assert service.confirm_at(payout.movement) == f"/treasurer/payouts?reconversion={asked['id']}"
    page = reading_fr(treasurer).get("/treasurer/reconciliation")
    assert f"confirme le paiement de la reconversion {asked['id']}" in page.text
    assert f'href="/treasurer/payouts?reconversion={asked["id"]}"' in page.text
    there = reading_fr(treasurer).get(f"/treasurer/payouts?reconversion={asked['id']}")
    assert f"fait partie du fichier de virements {batch['id']}" in there.text


def reading_fr(person: Person) -> Any:
    from tests.test_office import reading

    return reading(person, "fr")


def test_a_bank_line_naming_an_orders_client_id_matches_that_transfer(site: Any) -> None:
    """The id an order was sent with is one of its references: an office that writes it on
    the bank's paying-in form finds its deposit matched by it."""
    from tests.test_office import cash_in, deposit

    office, member = operator(site, "office"), join(site, "Inès")
    assert cash_in(office, member.id, 20_000).status_code == 201
    first = deposit(office, 10_000, slip="A-1", request_id="remise-0150").json()["transfer_id"]
    second = deposit(office, 10_000, slip="A-2", request_id="remise-0151").json()["transfer_id"]
    with site.app.state.node.ledger.reading() as conn:
        sent = {
            tid: json.loads(order)["id"]
            for tid, order in conn.execute(
                text("SELECT id, order_json FROM transfers WHERE id IN (:a, :b)"),
                {"a": first, "b": second},
            )
        }
    today = datetime.now(UTC).date().strftime("%d/%m/%Y")
    data = f"Date;Libellé;Montant\n{today};VERSEMENT {sent[second]};100,00\n".encode()
    done = service.import_statement(site.app.state.node, data, "csv")
    assert [(m.movement.transfer_id, m.how) for m in done.view.matched] == [(second, "reference")]


# -- a transfer file the bank booked on one line -------------------------------------------------


def paid_file(site: Any, amounts: list[int], bank_ref: str) -> dict[int, int]:
    """Reconversions of `amounts` (one shop each) put in one transfer file, marked paid with
    `bank_ref`: each reconversion's id and the payout's transfer id."""
    from tests.test_payouts import record, set_debtor
    from tests.test_reconversion import ask, with_units

    asked = []
    for amount in amounts:
        shop = with_units(site, amount, f"Boutique {next(_serial)}")
        assert record(shop).status_code == 201
        answer = ask(shop, amount, amount * 3 // 100)
        assert answer.status_code == 201, answer.text
        asked.append(answer.json()["id"])
    set_debtor(site)
    treasurer = treasurer_of(site)
    made = treasurer.post("/api/v1/treasury/payout-batches", json={"id": f"lot-{bank_ref}"})
    assert made.status_code == 201, made.text
    assert sorted(i["reconversion_id"] for i in made.json()["items"]) == sorted(asked)
    paid = treasurer.post(
        f"/api/v1/treasury/payout-batches/{made.json()['id']}/paid", json={"bank_ref": bank_ref}
    )
    assert paid.status_code == 200, paid.text
    with site.app.state.node.engine.connect() as conn:
        moved = repository.movements(conn, "reserve:digital", 0, 2**62)
    payouts = {m.reconversion: m.transfer_id for m in moved if m.kind == "payout"}
    return {r: payouts[r] for r in asked}


def batch_entry(cents: int, bank_ref: str, ends: list[str], info: str = "") -> str:
    """A CAMT.053 entry booking a whole transfer file (a debit) on one line."""
    today = datetime.now(UTC).date().isoformat()
    txs = "".join(
        f"<TxDtls><Refs><EndToEndId>{e}</EndToEndId></Refs>"
        f"<RmtInf><Ustrd>Reconversion {e[17:]}</Ustrd></RmtInf></TxDtls>"
        for e in ends
    )
    return (
        f'<Ntry><Amt Ccy="EUR">{cents // 100}.{cents % 100:02d}</Amt>'
        f"<CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{today}</Dt></BookgDt>"
        f"<AcctSvcrRef>{bank_ref}</AcctSvcrRef><NtryDtls><Btch><MsgId>MSG-{bank_ref}</MsgId>"
        f"<PmtInfId>PMT-{bank_ref}</PmtInfId><NbOfTxs>{len(ends)}</NbOfTxs></Btch>{txs}"
        f"</NtryDtls><AddtlNtryInf>{info or 'VIR SEPA EMIS REMISE'}</AddtlNtryInf></Ntry>"
    )


def camt(*entries: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Document '
        'xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt>'
        "<Id>REMISES</Id><Acct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></Acct>"
        f"{''.join(entries)}</Stmt></BkToCstmrStmt></Document>"
    ).encode()


def ends_of(payouts: dict[int, int]) -> list[str]:
    return [f"SOU-RECONVERSION-{r}" for r in payouts]


FILE = [10_000, 5_000, 2_000]  # paid 97,00 + 48,50 + 19,40 = 164,90 after the 3 % fee
FILE_NET = -16_490


def test_a_transfer_file_booked_on_one_line_is_matched_to_all_its_payouts(
    site: Any, node_settings: Any, tmp_path: Path
) -> None:
    payouts = paid_file(site, FILE, "REMISE-2026-12")
    statement = tmp_path / "remise.xml"
    statement.write_bytes(camt(batch_entry(-FILE_NET, "BQ-REMISE-1", ends_of(payouts))))
    env = {
        "SOU_DATA_DIR": str(node_settings.data_dir),
        "SOU_DATABASE_URL": node_settings.database_url,
    }
    run = CliRunner().invoke(sou_like(), ["reconcile", str(statement)], env=env)
    assert ", 1 new, 3 matched now." in run.output, run.output
    assert "books 3 transfers: " + ", ".join(map(str, payouts.values())) in run.output
    treasurer = treasurer_of(site)
    view = treasurer.get("/api/v1/treasury/reconciliation", params={"account": "reserve:digital"})
    matched = [m for m in view.json()["matched"] if m["movement"]["kind"] == "payout"]
    assert [m["movement"]["transfer_id"] for m in matched] == list(payouts.values())
    assert {(m["line"]["amount"], m["how"], m["parts"]) for m in matched} == {
        (FILE_NET, "reference", 3)
    }
    assert [m["part"] for m in matched] == [0, 1, 2]
    line = matched[0]["line"]
    assert "SOU-RECONVERSION" in line["end_to_end"] and len(line["end_to_end"]) <= 140
    # The line's amount counts once in the matched total, its payouts are all matched.
    assert view.json()["matched_total"] == FILE_NET
    assert not set(payouts.values()) & {
        m["transfer_id"] for m in view.json()["unmatched_movements"]
    }
    # Imported again: nothing added, nothing matched twice.
    before = counts(site.app.state.node)
    again = upload_bytes(treasurer, statement.read_bytes())
    assert (again["added"], again["matched"]) == (0, 0)
    assert counts(site.app.state.node)[1:] == before[1:]
    # The page shows the line once, its payouts under it, each with its transfer file.
    page = reading_fr(treasurer).get("/treasurer/reconciliation")
    assert page.text.count(f'id="batch-{line["id"]}"') == 1
    assert "3 opérations passées ensemble sur cette ligne" in page.text
    for reconversion in payouts:
        assert f'href="/treasurer/payouts?reconversion={reconversion}"' in page.text


def upload_bytes(person: Person, data: bytes, fmt: str = "camt") -> Any:
    answer = person.client.post(
        "/api/v1/treasury/reconciliation/statements",
        params={"format": fmt, "name": "remise"},
        content=data,
        headers={**person.headers(), "Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_transfer_file_line_one_cent_off_matches_nothing(site: Any) -> None:
    payouts = paid_file(site, FILE, "REMISE-2026-13")
    data = camt(batch_entry(-FILE_NET + 1, "BQ-REMISE-2", ends_of(payouts), "REMISE-2026-13"))
    done = upload_bytes(treasurer_of(site), data)
    view = done["view"]
    assert done["matched"] == 0
    assert not {m["movement"]["transfer_id"] for m in view["matched"]} & set(payouts.values())
    assert [line["amount"] for line in view["unmatched_lines"]] == [FILE_NET - 1]
    # It names the file's payouts: each shown beside it, with the difference.
    misses = {n["movement"]["transfer_id"] for n in view["near_misses"]}
    assert misses >= set(payouts.values())


def test_two_files_of_the_same_total_each_go_to_the_line_naming_them(site: Any) -> None:
    first = paid_file(site, [5_000, 2_000], "LOT-ALPHA")
    second = paid_file(site, [5_000, 2_000], "LOT-BETA")
    total = -(4_850 + 1_940)
    # One line names its file by the bank reference only, the other by its end-to-end ids.
    data = camt(
        batch_entry(-total, "BQ-B", [], "VIR SEPA REMISE LOT-BETA"),
        batch_entry(-total, "BQ-A", ends_of(first)),
    )
    view = upload_bytes(treasurer_of(site), data)["view"]
    booked = {m["movement"]["transfer_id"]: m["line"]["reference"] for m in view["matched"]}
    assert {booked.get(t) for t in first.values()} == {"BQ-A"}
    assert {booked.get(t) for t in second.values()} == {"BQ-B"}
    assert view["matched_total"] == 2 * total


def test_a_line_booking_two_files_is_matched_to_all_their_payouts_or_none(site: Any) -> None:
    """A bank booking on one line the two files sent the same day: the line names both (by
    their end-to-end ids here); matched to all their payouts when they add up to it."""
    first = paid_file(site, [5_000, 2_000], "LOT-GAMMA")
    second = paid_file(site, [10_000], "LOT-DELTA")
    both = -(4_850 + 1_940 + 9_700)
    treasurer = treasurer_of(site)
    off = upload_bytes(treasurer, camt(batch_entry(-both + 1, "BQ-GD-1", ends_of(first | second))))
    assert off["matched"] == 0  # one cent off: neither file, nor a part of one
    assert [line["amount"] for line in off["view"]["unmatched_lines"]] == [both - 1]
    done = upload_bytes(treasurer, camt(batch_entry(-both, "BQ-GD-2", ends_of(first | second))))
    assert done["matched"] == 3
    booked = {
        m["movement"]["transfer_id"]: (m["line"]["reference"], m["parts"])
        for m in done["view"]["matched"]
    }
    assert {booked.get(t) for t in [*first.values(), *second.values()]} == {("BQ-GD-2", 3)}
    assert done["view"]["matched_total"] == both


def test_a_file_line_naming_nothing_matches_by_amount_and_date(site: Any) -> None:
    payouts = paid_file(site, FILE, "REMISE-2026-14")
    today = datetime.now(UTC).date().strftime("%d/%m/%Y")
    data = f"Date;Libellé;Montant\n{today};PRLV REMISE VIREMENTS;-164,90\n".encode()
    done = service.import_statement(site.app.state.node, data, "csv")
    paired = [(m.movement.transfer_id, m.how, m.parts) for m in done.view.matched]
    assert paired == [(t, "amount", 3) for t in payouts.values()]
    assert done.matched == 3


def test_the_treasurer_matches_a_file_line_by_hand_and_undoes_it_whole(site: Any) -> None:
    payouts = paid_file(site, FILE, "REMISE-2026-15")
    node, treasurer = site.app.state.node, treasurer_of(site)
    data = camt(batch_entry(-FILE_NET, "BQ-REMISE-3", ends_of(payouts)))
    view = upload_bytes(treasurer, data)["view"]
    middle = next(m for m in view["matched"] if m["part"] == 1)
    line_id = middle["line"]["id"]
    # Undoing one match of the file undoes the line's three, kept in the history.
    undone = treasurer.delete(f"/api/v1/treasury/reconciliation/matches/{middle['id']}")
    assert undone.status_code == 204
    with node.engine.connect() as conn:
        stamped = conn.execute(
            select(matches.c.transfer_id, matches.c.undone_by).where(matches.c.line_id == line_id)
        ).all()
    assert sorted(t for t, by in stamped if by == treasurer.id) == sorted(payouts.values())
    # The automatic matching does not make it again.
    again = upload_bytes(treasurer, data)
    assert again["matched"] == 0
    assert [line["id"] for line in again["view"]["unmatched_lines"]] == [line_id]
    # By hand: two of the three do not add up to the line; refused, nothing written.
    ids = list(payouts.values())
    before = counts(node)
    wrong = treasurer.post(
        "/api/v1/treasury/reconciliation/matches",
        json={"line_id": line_id, "transfer_ids": ids[:2], "note": "remise globale"},
    )
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["error"] == "batch_sum_differs"
    assert (wrong.json()["count"], wrong.json()["total"], wrong.json()["amount"]) == (
        2,
        -(9_700 + 4_850),
        FILE_NET,
    )
    said = wrong.json()["message"]
    assert "-145,50" in said and "-164,90" in said and "Rien n’a été rapproché" in said
    english = treasurer.client.post(
        "/api/v1/treasury/reconciliation/matches",
        params={"lang": "en"},
        json={"line_id": line_id, "transfer_ids": ids[:2], "note": "remise globale"},
        headers=treasurer.headers(),
    )
    assert "add up to -145.50 EUR and the line to -164.90 EUR" in english.json()["message"]
    assert counts(node) == before
    # All three, on the page's form: one line, three movements, the note.
    made = treasurer.client.post(
        "/treasurer/reconciliation/match",
        data={
            "csrf": treasurer.csrf,
            "line_id": str(line_id),
            "transfer_id": [str(t) for t in ids],
            "note": "Remise globale de la banque",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    shown = treasurer.client.get(made.headers["location"])
    assert "la ligne porte 3 mouvements" in shown.text
    assert "Remise globale de la banque" in shown.text
    after = service.view(node, "reserve:digital")
    batch = [m for m in after.matched if m.line.id == line_id]
    assert [(m.movement.transfer_id, m.how, m.part) for m in batch] == [
        (t, "hand", part) for part, t in enumerate(ids)
    ]
    assert after.matched_total == FILE_NET


def test_the_database_refuses_a_plain_match_beside_a_file_and_a_payout_twice(site: Any) -> None:
    payouts = paid_file(site, FILE, "REMISE-2026-16")
    node = site.app.state.node
    today = datetime.now(UTC).date().strftime("%d/%m/%Y")
    data = (
        f"Date;Libellé;Montant\n{today};REMISE REMISE-2026-16;-164,90\n{today};FRAIS;-1,00\n"
    ).encode()
    service.import_statement(node, data, "csv")
    with node.engine.connect() as conn:
        batch = conn.execute(select(matches).where(matches.c.undone_ms.is_(None))).mappings().all()
        fee = conn.execute(select(lines.c.id).where(lines.c.amount == -100)).scalar_one()
    assert sorted(m["transfer_id"] for m in batch) == sorted(payouts.values())
    first = dict(batch[0])
    first.pop("id")
    deposit = next(m for m in service.view(node, "reserve:digital").unmatched_movements)
    attempts = [
        {**first, "transfer_id": deposit.transfer_id},  # a plain match beside the file's
        {**first, "transfer_id": deposit.transfer_id, "part": 1},  # its part 1 twice
        {**first, "line_id": fee},  # one payout on two lines at once
        {**first, "transfer_id": deposit.transfer_id, "line_id": fee, "part": -1},
    ]
    for values in attempts:
        with pytest.raises(IntegrityError), node.engine.begin() as conn:
            conn.execute(insert(matches).values(**values))
    with node.engine.begin() as conn:  # once the file is undone, the line is free again
        conn.execute(matches.update().values(undone_ms=1, undone_by="test"))
        conn.execute(insert(matches).values(**{**first, "transfer_id": deposit.transfer_id}))


def test_the_migration_holds_a_file_line_and_going_back_undoes_it(site: Any) -> None:
    from importlib.resources import files

    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext

    from ledger.models import metadata
    from runtime.node import migrate

    payouts = paid_file(site, FILE, "REMISE-2026-17")
    node = site.app.state.node
    today = datetime.now(UTC).date().strftime("%d/%m/%Y")
    data = (
        f"Date;Libellé;Montant\n{today};REMISE REMISE-2026-17;-164,90\n"
        f"{today};REMISE ESPECES;100,00\n"
    ).encode()
    assert service.import_statement(node, data, "csv").matched == 4

    def ours(obj: Any, _name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name.startswith("reconciliation_")

    with node.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": ours}
        )
        assert compare_metadata(context, metadata) == []
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    with node.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0021")
    with node.engine.connect() as conn:
        rows = conn.execute(text("SELECT transfer_id, undone_by FROM reconciliation_matches"))
        kept = {int(t): by for t, by in rows}
    # The old schema holds one movement per line: the file's line is undone, the rest stays.
    assert {t: kept[t] for t in payouts.values()} == dict.fromkeys(
        payouts.values(), "migration 0022 downgrade"
    )
    assert [by for t, by in kept.items() if t not in payouts.values()] == [None]
    migrate(node.engine)
    view = service.view(node, "reserve:digital")
    assert set(payouts.values()) <= {m.transfer_id for m in view.unmatched_movements}
    with node.engine.connect() as conn:
        assert conn.execute(select(func.max(matches.c.part))).scalar_one() == 0


@pytest.mark.one_database
def test_a_camt_batch_entry_is_one_line_naming_every_transfer_it_can() -> None:
    from audits.reconciliation import camt as camt_reader

    ends = [f"SOU-RECONVERSION-{n}" for n in range(100, 110)]
    read = camt_reader.parse(camt(batch_entry(123_456, "BQ-9", ends)))
    assert len(read.lines) == 1
    line = read.lines[0]
    assert (line.amount, line.reference, line.extra_ref) == (-123_456, "BQ-9", "PMT-BQ-9 MSG-BQ-9")
    assert line.end_to_end is not None and len(line.end_to_end) <= 140
    kept = line.end_to_end.split()
    assert kept == ends[: len(kept)] and 5 <= len(kept) < len(ends)  # whole ids, the first
    one = camt_reader.parse(camt(batch_entry(100, "BQ-1", ends[:1]))).lines[0]
    assert one.end_to_end == ends[0]
