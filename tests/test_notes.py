"""Paper notes: a series printed, sent to an exchange office, sold for cash, deposited once by
a shop, voided when lost; the audit's check of paper; the notes' codes decode back to their
links; every wrong code is refused with its own reason; `sou notes print`. SQLite and
PostgreSQL both."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from importlib.metadata import EntryPoint
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import typer
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from typer.testing import CliRunner

from audits.audit import audit
from ledger.canonical import b64, canonical
from ledger.signing import SigningKey, new_order
from members.shops import decide
from pos.notes import plugin as notes_plugin
from pos.notes import service
from pos.notes.errors import NOTE_FORGED
from pos.notes.sheet import note_png
from runtime.node import open_node
from runtime.plugins import GROUP, Plugins
from runtime.settings import Settings
from tests.conftest import IN_CI
from tests.people import Person, at_once, join, new_client, operator
from tests.test_qr import read as read_qr
from web.i18n import money, translations
from web.qr import qr_png

ORIGIN = "http://127.0.0.1"  # where the test client reaches the node: the notes' links
FR = translations("fr")


def with_notes() -> Plugins:
    """The installed plugins, and the notes' (until its entry point is installed)."""
    plugins = Plugins.discover()
    if "notes" not in plugins.found:
        plugins.load(EntryPoint("notes", "pos.notes.plugin", GROUP))
    return plugins


@pytest.fixture
def node(node_settings: Settings) -> Iterator[Any]:
    """The opened node, with the notes plugged in."""
    opened = open_node(node_settings, plugins=with_notes())
    yield opened
    opened.close()


# -- people and notes --------------------------------------------------------------------------


def shop(site: TestClient, name: str = "Zoé") -> Person:
    """A merchant whose shop the association approved."""
    merchant = join(site, name, role="merchant")
    with site.app.state.node.engine.begin() as conn:  # type: ignore[attr-defined]
        decide(conn, merchant.id, "approved", None, int(time.time() * 1000))
    return merchant


def print_series(treasurer: Person, series: str = "A", count: int = 10, cents: int = 1000) -> Any:
    made = treasurer.post(
        "/api/v1/notes/series", json={"series": series, "denomination": cents, "count": count}
    )
    assert made.status_code == 201, made.text
    return made.json()


def send(treasurer: Person, series: str, first: int, last: int, office: str = "mairie") -> Any:
    sent = treasurer.post(
        "/api/v1/notes/dispatches",
        json={"series": series, "first": first, "last": last, "office": office},
    )
    assert sent.status_code == 201, sent.text
    return sent.json()


def sell(office: Person, series: str, first: int, last: int) -> Any:
    sold = office.post("/api/v1/notes/sales", json={"series": series, "first": first, "last": last})
    assert sold.status_code == 201, sold.text
    return sold.json()


def link(site: TestClient, series: str, serial: int) -> str:
    node = site.app.state.node  # type: ignore[attr-defined]
    return service.note_link(node, ORIGIN, service.find_series(node, series), serial)


def scan(site: TestClient, code: str) -> Any:
    return new_client(site).post("/api/v1/notes/scan", json={"link": code})


def deposit_order(merchant: Person, note: dict[str, Any]) -> dict[str, Any]:
    """A note_deposit of a scanned note, signed by the merchant's device key."""
    assert merchant.key is not None
    origin = merchant.client.app.state.node.ledger.origin  # type: ignore[attr-defined]
    order = new_order(
        "note_deposit",
        merchant.key,
        origin,
        to=merchant.account,
        series=note["series"],
        serial=note["serial"],
        denomination=note["denomination"],
        currency=note["currency"],
        ref=note["sale"],
    )
    return merchant.key.sign(order).to_json()


def deposit(merchant: Person, code: str, note: dict[str, Any]) -> Any:
    body = {"link": code, **deposit_order(merchant, note)}
    return merchant.post("/api/v1/notes/deposits", json=body)


def balances(site: TestClient, *codes: str) -> dict[str, int]:
    ledger = site.app.state.node.ledger  # type: ignore[attr-defined]
    return {code: ledger.balance(code) for code in codes}


NOTE_ACCOUNTS = ("notes:stock", "notes:office:mairie", "notes:circulation", "reserve:paper")


# -- the ledger's states -----------------------------------------------------------------------


def test_a_note_goes_from_the_printer_to_a_shop_and_the_ledger_says_where(site: Any) -> None:
    treasurer, office = operator(site, "treasurer"), operator(site, "office")
    zoe = shop(site)
    till_before = balances(site, "office:mairie:cash")["office:mairie:cash"]
    made = print_series(treasurer, "A", count=10, cents=1000)
    assert (made["stock"], made["circulation"], made["state"]) == (10, 0, "printed")
    assert balances(site, "notes:stock")["notes:stock"] == 10_000

    assert send(treasurer, "A", 1, 6)["amount"] == 6_000
    sold = sell(office, "A", 1, 3)
    assert (sold["count"], sold["amount"]) == (3, 3_000)
    assert balances(site, *NOTE_ACCOUNTS) == {
        "notes:stock": 4_000,
        "notes:office:mairie": 3_000,
        "notes:circulation": 3_000,
        "reserve:paper": 0,
    }
    assert balances(site, "office:mairie:cash")["office:mairie:cash"] == till_before + 3_000
    before = audit(site.app.state.node.engine)
    assert before.ok and before.state is not None
    held = office.get("/api/v1/notes/office").json()
    assert held["holdings"] == [{"series": "A", "denomination": 1000, "count": 3, "runs": [[4, 6]]}]
    assert held["note_cash"] == 3_000

    states = {n: scan(site, link(site, "A", n)).json()["state"] for n in (2, 5, 9)}
    assert states == {2: "circulation", 5: "office", 9: "stock"}

    code = link(site, "A", 2)
    note = scan(site, code).json()
    assert note["spendable"] and note["sale"] is not None
    first = deposit(zoe, code, note)
    assert first.status_code == 201, first.text
    assert (first.json()["amount"], zoe.balance()) == (1_000, 1_000)
    again = deposit(zoe, code, note)
    assert (again.status_code, again.json()["error"]) == (409, "note_deposited")
    assert scan(site, code).json()["state"] == "deposited"
    assert balances(site, "notes:circulation")["notes:circulation"] == 2_000

    # The office takes the notes' cash to the paper reserve; the treasurer voids a lost
    # range: the stock's and the office's notes go back, the circulating one takes its euros.
    taken = office.post(
        "/api/v1/notes/cash-deposits", json={"id": "paper-1", "amount": 3_000, "slip_ref": "B-1"}
    )
    assert taken.status_code == 201, taken.text
    voided = treasurer.post(
        "/api/v1/notes/voids", json={"series": "A", "first": 2, "last": 10, "reason": "volés"}
    )
    assert voided.status_code == 201, voided.text
    assert voided.json()["count"] == 8  # note 2 was deposited: it stays so
    assert balances(site, *NOTE_ACCOUNTS) == {
        "notes:stock": 0,
        "notes:office:mairie": 0,
        "notes:circulation": 1_000,  # note 1, still good
        "reserve:paper": 2_000,
    }
    assert scan(site, link(site, "A", 3)).json()["state"] == "void"
    listed = treasurer.get("/api/v1/notes/series").json()
    assert [(s["circulation"], s["deposited"], s["void"]) for s in listed] == [(1, 1, 8)]
    full = audit(site.app.state.node.engine)
    assert full.ok and full.state is not None
    # Resumed from the audit made before the deposit and the void, the notes' totals come
    # out as those of the full audit.
    resumed = audit(site.app.state.node.engine, since=before.state)
    assert resumed.ok and not resumed.full and resumed.state is not None
    assert resumed.state.paper == full.state.paper


def test_notes_move_only_from_where_they_are(site: Any) -> None:
    treasurer, office = operator(site, "treasurer"), operator(site, "office")
    print_series(treasurer, "B", count=5, cents=500)
    send(treasurer, "B", 1, 2)
    twice = treasurer.post(
        "/api/v1/notes/dispatches", json={"series": "B", "first": 2, "last": 3, "office": "mairie"}
    )
    assert (twice.status_code, twice.json()["error"]) == (409, "notes_not_in_stock")
    not_there = office.post("/api/v1/notes/sales", json={"series": "B", "first": 2, "last": 3})
    assert (not_there.status_code, not_there.json()["error"]) == (409, "notes_not_at_office")
    same = print_series_answer(treasurer, "B")
    assert (same.status_code, same.json()["error"]) == (409, "series_exists")
    elsewhere = treasurer.post(
        "/api/v1/notes/dispatches", json={"series": "B", "first": 4, "last": 4, "office": "nowhere"}
    )
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "unknown_note_office")
    # The paper reserve is empty: a note in circulation cannot be voided before its cash
    # reached the bank.
    sell(office, "B", 1, 1)
    short = treasurer.post(
        "/api/v1/notes/voids", json={"series": "B", "first": 1, "last": 1, "reason": "brûlé"}
    )
    assert (short.status_code, short.json()["error"]) == (409, "paper_reserve_short")
    assert scan(site, link(site, "B", 1)).json()["state"] == "circulation"  # nothing moved
    resident = join(site, "Camille")
    note = scan(site, link(site, "B", 1)).json()
    refused = deposit(resident, link(site, "B", 1), note)
    assert refused.status_code == 403
    assert audit(site.app.state.node.engine).ok


def print_series_answer(treasurer: Person, series: str) -> Any:
    return treasurer.post(
        "/api/v1/notes/series", json={"series": series, "denomination": 500, "count": 5}
    )


def test_a_note_is_deposited_once_when_two_shops_scan_it_at_the_same_moment(site: Any) -> None:
    treasurer, office = operator(site, "treasurer"), operator(site, "office")
    zoe, remi = shop(site, "Zoé"), shop(site, "Rémi")
    print_series(treasurer, "C", count=4, cents=2000)
    send(treasurer, "C", 1, 4)
    sell(office, "C", 1, 4)
    for serial in range(1, 5):  # four notes, four races
        code = link(site, "C", serial)
        note = scan(site, code).json()
        orders = [(p, {"link": code, **deposit_order(p, note)}) for p in (zoe, remi)]
        racing = [partial(p.post, "/api/v1/notes/deposits", json=body) for p, body in orders]
        answers = at_once(racing)
        codes = sorted((a.status_code, a.json().get("error")) for a in answers)
        assert codes == [(201, None), (409, "note_deposited")], codes
    assert zoe.balance() + remi.balance() == 8_000
    assert balances(site, "notes:circulation")["notes:circulation"] == 0
    assert audit(site.app.state.node.engine).ok


# -- the audit's check of paper ----------------------------------------------------------------


def test_the_audit_finds_notes_not_covered_by_the_paper_reserve(site: Any) -> None:
    """The office took the notes' cash to the digital reserve: the global backing holds, but
    the paper reserve does not cover the notes in circulation."""
    treasurer, office = operator(site, "treasurer"), operator(site, "office")
    print_series(treasurer, "D", count=3, cents=1000)
    send(treasurer, "D", 1, 3)
    sell(office, "D", 1, 3)
    till = balances(site, "office:mairie:cash")["office:mairie:cash"]
    to_digital = office.post(
        "/api/v1/office/deposits", json={"id": "all-of-it", "amount": till, "slip_ref": "X-1"}
    )
    assert to_digital.status_code == 201, to_digital.text
    report = audit(site.app.state.node.engine)
    paper = [f.message for f in report.findings if f.check == "paper"]
    assert paper == [
        "3000 SOU cents of notes in circulation, but only 0 EUR cents in reserve:paper and 0 "
        "from notes sold in the tills"
    ]


def test_the_audit_finds_a_tampered_note_account(site: Any) -> None:
    treasurer, office = operator(site, "treasurer"), operator(site, "office")
    print_series(treasurer, "E", count=3, cents=1000)
    send(treasurer, "E", 1, 3)
    sell(office, "E", 1, 2)
    engine = site.app.state.node.engine
    clean = audit(engine)
    assert clean.ok and clean.state is not None
    with engine.begin() as conn:  # an attacker moves a note from the office to circulation
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        for code, delta in (("notes:circulation", 1000), ("notes:office:mairie", -1000)):
            conn.execute(
                text("UPDATE accounts SET balance = balance + :d WHERE code = :c"),
                {"d": delta, "c": code},
            )
    paper = {f.account: f.message for f in audit(engine).findings if f.check == "paper"}
    resumed = audit(engine, since=clean.state)
    assert {f.account: f.message for f in resumed.findings if f.check == "paper"} == paper
    assert paper == {
        "notes:circulation": "notes sold (2000) less deposited (0) less voided in circulation "
        "(0) give 2000 SOU cents, but notes:circulation holds 3000",
        "notes:office:mairie": "notes sent to notes:office:mairie (3000) less sold (2000) less "
        "voided there (0) give 1000 SOU cents, but notes:office:mairie holds 0",
        # and the note made up in circulation has no euros behind it
        "reserve:paper": "3000 SOU cents of notes in circulation, but only 0 EUR cents in "
        "reserve:paper and 2000 from notes sold in the tills",
    }


# -- codes -------------------------------------------------------------------------------------


def decode(png: bytes) -> list[str]:
    return [found.text for found in read_qr(png)]


def test_every_note_code_decodes_to_its_link_and_the_sheet_holds_them(site: Any) -> None:
    treasurer = operator(site, "treasurer")
    print_series(treasurer, "F", count=10, cents=200)
    codes = [link(site, "F", n) for n in range(1, 11)]
    for code in codes:
        assert decode(note_png(code)) == [code]  # as printed on the sheet
        assert decode(qr_png(code)) == [code]  # as any screen shows it
        assert urlsplit(code).path.startswith("/n/F/")
    sheet = treasurer.get("/api/v1/notes/series/F/sheet.pdf")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"] == "application/pdf"
    assert sheet.content.startswith(b"%PDF") and sheet.content.count(b"/Type /Page\n") == 2
    part = treasurer.get("/api/v1/notes/series/F/sheet.pdf", params={"first": 3, "last": 4})
    assert part.content.count(b"/Type /Page\n") == 1
    refused = operator(site, "office").get("/api/v1/notes/series/F/sheet.pdf")
    assert refused.status_code == 403


def test_the_printed_sheet_decodes_to_the_notes_links(site: Any, tmp_path: Any) -> None:
    """The sheet as a printer sees it (rasterised at 150 dpi): each note's code reads back."""
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        message = "pdftoppm (Debian's poppler-utils) rasterises the sheet: not installed"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    treasurer = operator(site, "treasurer")
    print_series(treasurer, "L", count=8, cents=2000)
    sheet = tmp_path / "sheet.pdf"
    sheet.write_bytes(treasurer.get("/api/v1/notes/series/L/sheet.pdf").content)
    subprocess.run([pdftoppm, "-r", "150", "-png", str(sheet), str(tmp_path / "page")], check=True)
    (page,) = tmp_path.glob("page*.png")
    assert sorted(decode(page.read_bytes())) == sorted(link(site, "L", n) for n in range(1, 9))


# -- every wrong code is refused with its own reason, never a 500 ------------------------------

REFUSED_AS_DAMAGED = {"note_link_damaged", "note_forged", "note_elsewhere"}


@pytest.fixture
def sold_note(site: Any) -> str:
    treasurer, office = operator(site, "treasurer"), operator(site, "office")
    print_series(treasurer, "G", count=3, cents=500)
    send(treasurer, "G", 1, 3)
    sell(office, "G", 1, 3)
    return link(site, "G", 2)


def refused(site: Any, code: str) -> tuple[int, str]:
    answer = scan(site, code)
    assert 400 <= answer.status_code < 500, (code, answer.status_code, answer.text)
    body = answer.json()
    assert body["message"] and body["message"] != body["error"]
    return answer.status_code, str(body["error"])


FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=400))
def test_a_truncated_code_is_refused(site: Any, sold_note: str, cut: int) -> None:
    code = sold_note[: cut % len(sold_note)]
    if not code:
        return  # nothing scanned: nothing sent
    assert refused(site, code)[1] in REFUSED_AS_DAMAGED


@FUZZ
@given(where=st.integers(min_value=0, max_value=400), char=st.characters(codec="utf-8"))
def test_an_altered_code_is_refused(site: Any, sold_note: str, where: int, char: str) -> None:
    where %= len(sold_note)
    code = sold_note[:where] + char + sold_note[where + 1 :]
    if code.strip().lower() == sold_note.lower():
        return  # the same code (a scheme's case, whitespace around it)
    assert refused(site, code)[1] in REFUSED_AS_DAMAGED | {"unknown_note_series"}


@FUZZ
@given(seed=st.binary(min_size=32, max_size=32))
def test_a_code_signed_by_another_key_is_forged(site: Any, sold_note: str, seed: bytes) -> None:
    parts = urlsplit(sold_note)
    query = dict(parse_qsl(parts.query))
    fields = {"series": "G", "serial": 2, "denomination": 500}
    node = site.app.state.node
    message = canonical({**fields, "kind": "note", "node": node.ledger.origin})
    query["s"] = b64(SigningKey(seed).sign_bytes(message))
    assert refused(site, parts._replace(query=urlencode(query)).geturl()) == (400, "note_forged")


def test_a_code_signed_by_this_node_for_another_node_is_forged(site: Any, sold_note: str) -> None:
    parts = urlsplit(sold_note)
    query = dict(parse_qsl(parts.query))
    fields = {"series": "G", "serial": 2, "denomination": 500}
    node = site.app.state.node
    elsewhere = canonical({**fields, "kind": "note", "node": "another.example/valley"})
    query["s"] = b64(node.node_key.sign_bytes(elsewhere))
    assert refused(site, parts._replace(query=urlencode(query)).geturl()) == (400, "note_forged")


@FUZZ
@given(ago=st.integers(min_value=1, max_value=10**9))
def test_an_expired_code_is_refused(site: Any, sold_note: str, ago: int) -> None:
    from runtime.links import sign_link

    node = site.app.state.node
    expires = int(time.time()) - ago
    fields = {"series": "G", "serial": 2, "denomination": 500, "expires": expires}
    query = {"d": 500, "e": expires, "s": sign_link(node, "note", fields)}
    code = f"{ORIGIN}/n/G/2?{urlencode(query)}"
    assert refused(site, code) == (410, "note_expired")
    page = new_client(site).get(f"/n/G/2?{urlencode(query)}", headers={"Accept": "text/html"})
    assert page.status_code == 410
    assert (
        FR.gettext(
            "This note's series is past its end of validity: it can no longer be spent. "
            "Ask the association."
        )
        in page.text
    )


@FUZZ
@given(extra=st.text(min_size=300, max_size=5000))
def test_an_oversized_code_is_refused(site: Any, sold_note: str, extra: str) -> None:
    code = sold_note + "&x=" + extra
    if len(code) <= service.MAX_LINK:
        return
    assert refused(site, code) == (400, "note_link_too_long")


@FUZZ
@given(
    host=st.from_regex(r"\A[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){1,2}(:[0-9]{2,5})?\Z"),
    scheme=st.sampled_from(["http", "https"]),
)
def test_a_code_of_another_site_is_refused(
    site: Any, sold_note: str, host: str, scheme: str
) -> None:
    parts = urlsplit(sold_note)
    code = parts._replace(scheme=scheme, netloc=host).geturl()
    if (scheme, host) == ("http", "127.0.0.1"):
        return
    assert refused(site, code) == (400, "note_elsewhere")


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["d", "s", "e", "x"]), st.text(max_size=120)))
def test_a_note_page_with_any_query_answers_4xx_or_the_note(
    site: Any, sold_note: str, query: dict[str, str]
) -> None:
    page = new_client(site).get(f"/n/G/2?{urlencode(query)}", headers={"Accept": "text/html"})
    assert page.status_code == 200 or 400 <= page.status_code < 500, page.text
    checked = new_client(site).get(f"/api/v1/notes/G/2?{urlencode(query)}")
    assert checked.status_code == 200 or 400 <= checked.status_code < 500, checked.text


# -- the pages ---------------------------------------------------------------------------------


def test_the_note_page_says_in_french_whether_to_accept_it(site: Any, sold_note: str) -> None:
    path = urlsplit(sold_note)._replace(scheme="", netloc="").geturl()
    visitor = new_client(site)
    good = visitor.get(path, headers={"Accept": "text/html"})
    assert good.status_code == 200
    said = FR.gettext("Genuine note, in circulation: it is worth {amount}.")
    assert said.format(amount=money(500, "fr", "SOU")) in good.text
    assert 'id="deposit-form"' not in good.text  # a visitor deposits nothing
    merchant = shop(site)
    assert 'id="deposit-form"' in merchant.client.get(path).text
    forged = visitor.get(path.replace("/n/G/2", "/n/G/3"), headers={"Accept": "text/html"})
    assert forged.status_code == 400
    assert FR.gettext(NOTE_FORGED.message) in forged.text


def test_the_treasurer_and_the_office_work_from_their_pages(site: Any) -> None:
    treasurer, office = operator(site, "treasurer"), operator(site, "office")
    made = treasurer.client.post(
        "/notes",
        data={
            "csrf": treasurer.csrf,
            "action": "create",
            "series": "h",
            "denomination": "2000",
            "count": "8",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    listed = treasurer.client.get(made.headers["location"]).text
    assert FR.gettext("Series {series} printed: its notes are in the stock.").format(
        series="H"
    ) in listed.replace("&#39;", "'")
    sent = treasurer.client.post(
        "/notes",
        data={
            "csrf": treasurer.csrf,
            "action": "dispatch",
            "series": "H",
            "first": "1",
            "last": "4",
            "office": "mairie",
        },
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    assert "4 billets envoyés au comptoir." in treasurer.client.get(sent.headers["location"]).text
    sold = office.client.post(
        "/notes/office",
        data={"csrf": office.csrf, "action": "sell", "series": "H", "first": "2", "last": ""},
        follow_redirects=False,
    )
    assert sold.status_code == 303, sold.text
    shown = office.client.get(sold.headers["location"]).text
    assert "H-2" in shown and "20,00" in shown
    assert "1 billet vendu (H-2)\u202f: encaissez 20,00" in shown, shown  # one, not "billet(s)"
    wrong = office.client.post(
        "/notes/office",
        data={"csrf": office.csrf, "action": "sell", "series": "H", "first": "7", "last": "7"},
    )
    assert wrong.status_code == 409
    assert "n’est pas dans le stock de votre comptoir" in wrong.text


# -- `sou notes print` -------------------------------------------------------------------------


def test_sou_notes_print_writes_the_sheets(
    site: Any, node_settings: Settings, tmp_path: Any
) -> None:
    print_series(operator(site, "treasurer"), "K", count=9, cents=100)
    cli = typer.Typer()
    notes_plugin.sou_commands(cli=cli)
    env = {
        "SOU_DATA_DIR": str(node_settings.data_dir),
        "SOU_DATABASE_URL": node_settings.database_url,
        "SOU_PUBLIC_URL": "",
    }
    helped = CliRunner().invoke(cli, ["notes", "print", "--help"], env=env)
    assert helped.exit_code == 0 and "--url" in helped.output
    no_url = CliRunner().invoke(cli, ["notes", "print", "K"], env=env)
    assert no_url.exit_code == 2
    assert "SOU_PUBLIC_URL" in no_url.output
    out = tmp_path / "k.pdf"
    args = ["notes", "print", "K", "--url", "https://sou.example.org", "--out", str(out)]
    written = CliRunner().invoke(cli, args, env=env)
    assert written.exit_code == 0, written.output
    assert "9 notes of series K on 2 pages" in written.output
    assert out.read_bytes().count(b"/Type /Page\n") == 2
    unknown = CliRunner().invoke(cli, ["notes", "print", "Z", "--url", "https://x.org"], env=env)
    assert unknown.exit_code == 2 and "no series Z" in unknown.output
