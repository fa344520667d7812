"""The accountant's exports: the journal (CSV), the beancount file (read by the real
beancount library and by Fava) and the FEC (every rule of article A47 A-1 of the LPF), from
a ledger holding every kind of transfer the node makes; the CLI; the treasurer's page."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from audits.exports import charts, service
from audits.exports.service import FEC_COLUMNS, JOURNAL_COLUMNS, Books, Period
from ledger.operations import OPERATIONS, allowance_escrow, card_escrow, notes_office, plugin_escrow
from ledger.posting import Posted
from tests.conftest import NODE_KEY
from tests.factories import Book, register

pytest_plugins = ["tests.browser"]  # fixtures: `chromium`, `open_browser`

TZ = "Europe/Paris"
SIREN = "123456789"


def posted(book: Book, signed: Any) -> int:
    outcome = book.post(signed)
    assert isinstance(outcome, Posted), outcome
    return outcome.transfer_id


def every_kind(book: Book) -> dict[str, int]:
    """A ledger with each kind of transfer the node makes; the id of one of each."""
    ledger, local, t = book.ledger, book.local, "role:treasurer"
    ids: dict[str, int] = {}
    office = "role:office:mairie"
    book.keys[office] = register(ledger, NODE_KEY, office)
    book.keys["plugin:amap"] = register(ledger, NODE_KEY, "plugin:amap")
    for code in ("office:mairie:cash", notes_office("mairie"), plugin_escrow("amap", "c1_x")):
        ledger.open_account(code)
    alice, shop = book.member("alice_b", 0), book.member("alice.b", 0)
    ids["topup"] = book.topup(alice, 10_000).transfer_id
    ids["office_topup"] = posted(
        book,
        book.order("topup", office, to=shop, amount=5_000, currency=local, source="office:mairie"),
    )
    ids["bank_topup"] = posted(
        book, book.order("topup", t, to=shop, amount=2_000, currency=local, source="bank")
    )
    ids["payment"] = posted(book, book.payment(alice, shop, 1_500))
    ids["refund"] = posted(
        book,
        book.order(
            "refund", shop, from_=shop, to=alice, amount=500, currency=local, ref=ids["payment"]
        ),
    )
    ids["cash_deposit"] = posted(
        book,
        book.order("cash_deposit", t, office="mairie", amount=5_000, to="reserve:digital"),
    )
    ids["settlement"] = posted(book, book.order("settlement", t, amount=3_000))
    ids["redemption"] = posted(
        book,
        book.order(
            "redemption", shop, from_=shop, amount=4_000, fee=120, cause_fee=20, currency=local
        ),
    )
    ids["payout"] = posted(
        book,
        book.order("payout", t, ref=ids["redemption"], amount=3_880, bank_ref="VIR 2026-001"),
    )
    escrow = plugin_escrow("amap", "c1_x")
    ids["escrow_payment"] = posted(
        book,
        book.order("escrow_payment", alice, from_=alice, to=escrow, amount=1_000, currency=local),
    )
    for kind, amount, to in (("escrow_release", 600, shop), ("escrow_refund", 400, alice)):
        ids[kind] = posted(
            book,
            book.order(
                kind,
                "plugin:amap",
                from_=escrow,
                to=to,
                amount=amount,
                currency=local,
                ref=ids["escrow_payment"],
                rule="amap",
            ),
        )
    held = card_escrow(ids["topup"])
    ledger.open_account(held)
    for kind, source, target, amount in (
        ("card_hold", alice, held, 300),
        ("card_release", held, alice, 100),
        ("card_reversal", held, None, 200),
    ):
        fields = {"from_": source, "amount": amount, "currency": local, "ref": ids["topup"]}
        fields["rule"] = "stripe"
        if target:
            fields["to"] = target
        ids[kind] = posted(book, book.order(kind, "node", **fields))
    allowance = allowance_escrow(alice)
    ledger.open_account(allowance)
    ids["allowance_hold"] = posted(
        book,
        book.order("allowance_hold", alice, from_=alice, to=allowance, amount=200, currency=local),
    )
    ids["allowance_release"] = posted(
        book,
        book.order(
            "allowance_release",
            "node",
            from_=allowance,
            to=alice,
            amount=200,
            currency=local,
            rule="offline",
        ),
    )
    ids["card_write_off"] = posted(
        book,
        book.order("card_write_off", t, amount=200, currency=local, ref=ids["topup"], ext="x"),
    )
    ids["note_print"] = posted(
        book,
        book.order("note_print", t, series="A", denomination=500, count=3, currency=local),
    )
    note = {"series": "A", "denomination": 500, "currency": local}
    sales = {}
    for serial in (1, 2):
        ids["note_dispatch"] = posted(
            book,
            book.order(
                "note_dispatch", t, serial=serial, office="mairie", ref=ids["note_print"], **note
            ),
        )
        sales[serial] = ids["note_sale"] = posted(
            book,
            book.order(
                "note_sale",
                office,
                serial=serial,
                office="mairie",
                ref=ids["note_dispatch"],
                **note,
            ),
        )
    ids["note_deposit"] = posted(
        book, book.order("note_deposit", alice, serial=1, to=alice, ref=sales[1], **note)
    )
    ids["paper_deposit"] = posted(
        book, book.order("cash_deposit", t, office="mairie", amount=1_000, to="reserve:paper")
    )
    ids["note_void"] = posted(
        book, book.order("note_void", t, serial=2, ref=sales[2], memo="brûlé, « perdu »", **note)
    )
    ids["correction"] = posted(
        book, book.order("correction", t, ref=ids["bank_topup"], memo='erreur "de saisie"')
    )
    return ids


# -- helpers ---------------------------------------------------------------------------------


def today() -> date:
    return datetime.now(ZoneInfo(TZ)).date()


def this_year() -> Period:
    return Period.parse(None, None, today())


def books_of(book: Book, siren: str = SIREN) -> Books:
    return Books(book.ledger.engine, book.local, TZ, siren)


def text_of(what: str, book: Book, period: Period | None = None) -> str:
    return "".join(service.export(what, books_of(book), period or this_year()))


def written(what: str, book: Book, folder: Path, period: Period | None = None) -> Path:
    """The export as the CLI and the page write it: bytes in the export's encoding."""
    period = period or this_year()
    path = folder / service.file_name(what, period, SIREN)
    path.write_bytes(text_of(what, book, period).encode(service.encoding(what), errors="replace"))
    return path


def stored(book: Book) -> dict[int, dict[tuple[str, str], int]]:
    """Every transfer's postings, straight from the ledger's tables."""
    from ledger.models import accounts, postings

    found: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    with book.ledger.reading() as conn:
        query = select(
            postings.c.transfer_id, accounts.c.code, postings.c.currency, postings.c.amount
        )
        for tid, code, currency, amount in conn.execute(
            query.join(accounts, accounts.c.id == postings.c.account_id)
        ):
            found[tid][(code, currency)] = amount
    return dict(found)


def as_cents(text: str, mark: str = ".") -> int:
    whole, fraction = text.lstrip("-").split(mark)
    value = int(whole) * 100 + int(fraction)
    return -value if text.startswith("-") else value


def balances_in(entries: list[Any]) -> dict[tuple[str, str], int]:
    """What each account of a beancount file holds at its end, in cents."""
    from beancount.core import data

    held: dict[tuple[str, str], int] = defaultdict(int)
    for entry in entries:
        if isinstance(entry, data.Transaction):
            for leg in entry.postings:
                units = leg.units
                assert units is not None and units.number is not None
                held[leg.account, units.currency] += int(units.number * 100)
    return {key: value for key, value in held.items() if value}


def books_balances(book: Book) -> dict[tuple[str, str], int]:
    """The ledger's running balances as the association's books show them."""
    from ledger.models import accounts

    with book.ledger.reading() as conn:
        rows = conn.execute(select(accounts.c.code, accounts.c.currency, accounts.c.balance)).all()
    names = charts.beancount_names(code for code, _, _ in rows)
    return {
        (names[code], currency): charts.issuer_view(balance, currency)
        for code, currency, balance in rows
        if balance
    }


# -- the journal -----------------------------------------------------------------------------


def test_the_journal_lists_every_transfer_with_its_postings_in_order(book: Book) -> None:
    ids = every_kind(book)
    rows = list(csv.DictReader(io.StringIO(text_of("journal", book))))
    assert tuple(rows[0].keys()) == JOURNAL_COLUMNS
    found: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    for row in rows:
        found[int(row["transfer_id"])][(row["account"], row["currency"])] = as_cents(row["amount"])
    assert found == stored(book)  # every transfer, every posting, to the cent
    order = [int(r["transfer_id"]) for r in rows]
    assert order == sorted(order)
    # Every kind the ledger makes (a collection needs a payer's offline authorisation: the
    # postings are a payment's), each with its words for the accountant.
    assert {r["kind"] for r in rows} == set(OPERATIONS) - {"collection"}
    assert set(service.KIND_LABELS) == set(OPERATIONS)
    payout = next(r for r in rows if int(r["transfer_id"]) == ids["payout"])
    assert (payout["kind"], payout["ref"], payout["memo"]) == (
        "payout",
        str(ids["redemption"]),
        "VIR 2026-001",
    )
    payment = next(r for r in rows if int(r["transfer_id"]) == ids["payment"])
    assert (payment["from"], payment["to"]) == ("member:alice_b", "member:alice.b")
    assert datetime.fromisoformat(payment["time"]).date() == today()
    voided = next(r for r in rows if int(r["transfer_id"]) == ids["note_void"])
    assert voided["memo"] == "brûlé, « perdu »"


def test_a_period_without_transfers_gives_the_header_alone(book: Book) -> None:
    every_kind(book)
    last_year = Period(date(today().year - 1, 1, 1), date(today().year - 1, 12, 31))
    assert text_of("journal", book, last_year) == ",".join(JOURNAL_COLUMNS) + "\r\n"


# -- beancount -------------------------------------------------------------------------------


def test_beancount_is_accepted_by_bean_check_and_opened_by_fava(book: Book, tmp_path: Path) -> None:
    from beancount import loader
    from beancount.core import data
    from fava.core import FavaLedger

    ids = every_kind(book)
    path = written("beancount", book, tmp_path)
    entries, problems, _ = loader.load_file(str(path))
    assert problems == []
    txns = [e for e in entries if isinstance(e, data.Transaction)]
    assert sorted(int(t.meta["transfer"]) for t in txns) == sorted(stored(book))
    assert {e.currency for e in entries if isinstance(e, data.Commodity)} == {"EUR", "SOU"}
    roots = {e.account.split(":")[0] for e in entries if isinstance(e, data.Open)}
    assert roots == {"Assets", "Liabilities", "Income", "Equity"}
    held = balances_in(entries)
    # The association's books: what it holds, what it owes its members, what it earned...
    assert held["Income:Fees", "SOU"] == -(120 - 20)
    assert held["Liabilities:Cause", "SOU"] == -20
    names = charts.beancount_names(["member:alice_b", "member:alice.b"])
    assert len(set(names.values())) == 2  # two ids one character apart stay two accounts
    assert held[names["member:alice_b"], "SOU"] == -book.balance("member:alice_b")
    assert held["Assets:Reserve:Digital", "EUR"] == book.balance("reserve:digital")
    # ...and every account as the ledger holds it (units owed: the other way round).
    assert held == books_balances(book)
    fava = FavaLedger(str(path))
    assert fava.errors == []
    assert any(
        isinstance(e, data.Transaction)
        and e.meta.get("transfer") == str(ids["correction"])
        and 'erreur "de saisie"' in e.narration
        for e in fava.all_entries
    )


def test_a_later_period_opens_with_the_balances_it_inherits(book: Book, tmp_path: Path) -> None:
    from beancount import loader

    every_kind(book)
    next_year = Period(date(today().year + 1, 1, 1), date(today().year + 1, 12, 31))
    path = written("beancount", book, tmp_path, next_year)
    entries, problems, _ = loader.load_file(str(path))
    assert problems == []
    assert balances_in(entries) == books_balances(book)


# -- the FEC ---------------------------------------------------------------------------------

FEC_DATE = re.compile(r"^[0-9]{8}$")
FEC_AMOUNT = re.compile(r"^[0-9]+,[0-9]{2}$")
MANDATORY = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "ValidDate",
)


def check_fec(raw: bytes, period: Period) -> list[dict[str, str]]:
    """Every rule of the FEC's format (BOI-CF-IOR-60-40-20) that a file can be held to."""
    text = raw.decode("iso-8859-15")
    lines = text.split("\n")
    assert lines[-1] == ""  # every record ends its line
    header, records = lines[0], lines[1:-1]
    assert header.split("\t") == list(FEC_COLUMNS)
    rows = []
    for line in records:
        fields = line.split("\t")
        assert len(fields) == 18, line
        rows.append(dict(zip(FEC_COLUMNS, fields, strict=True)))
    balance: dict[str, int] = defaultdict(int)
    numbers: list[int] = []
    for row in rows:
        for name in MANDATORY:
            assert row[name].strip(), (name, row)
        for name in ("EcritureDate", "PieceDate", "ValidDate"):
            assert FEC_DATE.match(row[name]), row
            assert period.start <= datetime.strptime(row[name], "%Y%m%d").date() <= period.end
        assert FEC_AMOUNT.match(row["Debit"]) and FEC_AMOUNT.match(row["Credit"]), row
        debit, credit = as_cents(row["Debit"], ","), as_cents(row["Credit"], ",")
        assert (debit == 0) != (credit == 0), row  # one side per line, never both, never none
        balance[row["EcritureNum"]] += debit - credit
        if not numbers or numbers[-1] != int(row["EcritureNum"]):
            numbers.append(int(row["EcritureNum"]))
        assert row["CompteNum"].isdigit() and row["CompteNum"][0] in "1234567"
    assert all(total == 0 for total in balance.values()), balance
    assert numbers == list(range(1, len(numbers) + 1))  # consecutive, each entry in one block
    dates = [row["EcritureDate"] for row in rows]
    assert dates == sorted(dates)
    return rows


def test_the_fec_follows_every_rule_of_the_format(book: Book, tmp_path: Path) -> None:
    ids = every_kind(book)
    period = this_year()
    path = written("fec", book, tmp_path, period)
    assert path.name == f"{SIREN}FEC{today().year}1231.txt"
    rows = check_fec(path.read_bytes(), period)
    by_piece: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        amount = as_cents(row["Debit"], ",") - as_cents(row["Credit"], ",")
        by_piece[row["PieceRef"]][row["CompteNum"]] += amount
    # A card top-up: euros due from Stripe, units owed to the member.
    assert by_piece[f"T{ids['topup']}"] == {"5115": 10_000, "4671": -10_000}
    # A reconversion: the member's units come back, the fee is earned, the rest is owed...
    assert by_piece[f"T{ids['redemption']}"] == {
        "4671": 4_000,
        "4673": -20,
        "4676": -3_880,
        "706": -100,
    }
    # ...until it is paid from the bank.
    assert by_piece[f"T{ids['payout']}"] == {"4676": 3_880, "5121": -3_880}
    assert by_piece[f"T{ids['note_sale']}"] == {"531": 500, "4672": -500}
    # Members paying each other move nothing of the association's: no entry.
    assert f"T{ids['payment']}" not in by_piece
    assert f"T{ids['note_print']}" not in by_piece
    journals = {row["PieceRef"]: row["JournalCode"] for row in rows}
    assert journals[f"T{ids['office_topup']}"] == "CA"
    assert journals[f"T{ids['redemption']}"] == "OD"
    assert journals[f"T{ids['settlement']}"] == "BQ"
    assert any("brûlé" in row["EcritureLib"] for row in rows)


def test_the_fec_of_a_later_period_opens_with_balances_carried_forward(
    book: Book, tmp_path: Path
) -> None:
    every_kind(book)
    next_year = Period(date(today().year + 1, 1, 1), date(today().year + 1, 12, 31))
    rows = check_fec(written("fec", book, tmp_path, next_year).read_bytes(), next_year)
    assert {row["JournalCode"] for row in rows} == {"AN"}
    bank = sum(
        as_cents(r["Debit"], ",") - as_cents(r["Credit"], ",")
        for r in rows
        if r["CompteNum"] == "5121"
    )
    assert bank == book.balance("reserve:digital") + book.balance("payouts:pending")


def test_the_fec_needs_the_siren(book: Book) -> None:
    from web.refusals import Refusal

    with pytest.raises(Refusal) as refused:
        service.export("fec", books_of(book, siren=""), this_year())
    assert refused.value.code == "no_siren"


# -- periods, figures, names -----------------------------------------------------------------


def test_periods_default_to_the_current_year_and_refuse_what_is_not_one() -> None:
    from web.refusals import Refusal

    assert Period.parse(None, None, date(2026, 6, 3)) == Period(
        date(2026, 1, 1), date(2026, 12, 31)
    )
    assert Period.parse("2026-03-01", "", date(2026, 6, 3)).end == date(2026, 12, 31)
    for start, end, code in (
        ("2026-13-01", None, "bad_export_date"),
        ("31/01/2026", None, "bad_export_date"),
        ("2026-05-01", "2026-04-30", "bad_export_period"),
        ("0001-01-01", None, "export_period_out_of_range"),
        (None, "9999-12-31", "export_period_out_of_range"),
    ):
        with pytest.raises(Refusal) as refused:
            Period.parse(start, end, date(2026, 6, 3))
        assert refused.value.code == code


@given(st.dates(), st.dates(), st.sampled_from(["UTC", TZ, "Pacific/Kiritimati"]))
def test_any_two_days_make_a_period_or_a_plain_refusal(first: date, last: date, zone: str) -> None:
    from web.refusals import Refusal

    try:
        period = Period.parse(first.isoformat(), last.isoformat(), date(2026, 6, 3))
    except Refusal as refusal:
        assert refusal.status == 422
        return
    start_ms, end_ms = period.bounds_ms(zone)
    assert 0 <= start_ms < end_ms


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_amounts_are_written_exactly(amount: int) -> None:
    assert as_cents(service.cents(amount)) == amount
    assert as_cents(service.cents(amount, ","), ",") == amount


ID = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,47}", fullmatch=True)


@given(st.sets(ID, min_size=1, max_size=8))
def test_every_account_keeps_a_beancount_name_of_its_own(ids: set[str]) -> None:
    from beancount.core import account

    names = charts.beancount_names([f"member:{i}" for i in ids])
    assert len(set(names.values())) == len(ids)
    assert all(account.is_valid(name) for name in names.values())


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli(node: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`sou` as typed in a shell, over the test node's settings."""
    from typer.testing import CliRunner

    from node.cli import build_cli

    monkeypatch.setenv("SOU_DATA_DIR", str(node.settings.data_dir))
    monkeypatch.setenv("SOU_DATABASE_URL", node.settings.database_url)
    monkeypatch.delenv("SOU_EXPORTS_SIREN", raising=False)
    app, runner = build_cli(node.settings), CliRunner()
    return lambda *args: runner.invoke(app, ["export", *args])


def funded(node: Any) -> int:
    """A wallet topped up at the office; the transfer's id."""
    from runtime.signing import post, sign_as

    node.ledger.open_account("member:camille")
    signed = sign_as(
        node,
        "role:office:mairie",
        "topup",
        "export-1",
        to="member:camille",
        amount=2_500,
        currency=node.ledger.chart.local,
        source="office:mairie",
    )
    return int(post(node, signed).transfer_id)


def test_the_cli_writes_each_export(cli: Any, node: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from beancount import loader

    topup = funded(node)
    assert cli("--help").exit_code == 0
    assert "--from" in cli("--help").output
    journal = tmp_path / "journal.csv"
    done = cli("journal", "--output", str(journal))
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(journal.open(encoding="utf-8")))
    assert {int(r["transfer_id"]) for r in rows} >= {topup}
    ledger_file = tmp_path / "books.beancount"
    assert cli("beancount", "-o", str(ledger_file)).exit_code == 0
    assert loader.load_file(str(ledger_file))[1] == []
    monkeypatch.setenv("SOU_EXPORTS_SIREN", SIREN)
    monkeypatch.chdir(tmp_path)
    year = today().year
    done = cli("fec", "--from", f"{year}-01-01", "--to", f"{year}-12-31")
    assert done.exit_code == 0, done.output
    fec = tmp_path / f"{SIREN}FEC{year}1231.txt"
    rows = check_fec(fec.read_bytes(), this_year())
    assert {r["PieceRef"] for r in rows} >= {f"T{topup}"}
    assert not list(tmp_path.glob("*.part"))


def test_the_cli_says_why_it_cannot_run(cli: Any, node: Any, tmp_path: Path) -> None:
    for args, says in (
        (["fec"], "SOU_EXPORTS_SIREN"),
        (["journal", "--from", "2026-02-30"], "year-month-day"),
        (["journal", "--from", "2026-05-01", "--to", "2026-04-01"], "on or before"),
    ):
        done = cli(*args, "--output", str(tmp_path / "x"))
        assert done.exit_code == 2 and says in done.output, (args, done.output)
    assert not (tmp_path / "x").exists()
    assert cli("ledger").exit_code == 2  # no such export


# -- the treasurer's page --------------------------------------------------------------------

HTML = {"Accept": "text/html"}


def test_the_treasurer_downloads_each_file_of_a_period(
    site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audits.exports.settings import ExportSettings
    from tests.people import operator

    node = site.app.state.node
    topup = funded(node)
    treasurer = operator(site, "treasurer")
    page = treasurer.client.get("/treasurer/exports", headers=HTML)
    assert page.status_code == 200
    assert "Exports comptables" in page.text and "Télécharger" in page.text
    assert 'id="fec-needs-siren"' in page.text  # no SIREN yet: the page says why
    english = treasurer.client.get("/treasurer/exports?lang=en", headers=HTML).text
    assert "Accounting exports" in english and "bean-check" in english
    year = today().year
    period = {"from": f"{year}-01-01", "to": f"{year}-12-31"}
    got = treasurer.client.get("/treasurer/exports/journal", params=period, headers=HTML)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert f"sou-journal-{year}0101-{year}1231.csv" in got.headers["content-disposition"]
    assert {int(r["transfer_id"]) for r in csv.DictReader(io.StringIO(got.text))} >= {topup}
    got = treasurer.client.get("/treasurer/exports/beancount", params=period, headers=HTML)
    assert got.status_code == 200 and "open Liabilities:Members:Camille SOU" in got.text
    refused = treasurer.client.get("/treasurer/exports/fec", params=period, headers=HTML)
    assert refused.status_code == 409 and "SIREN" in refused.text
    monkeypatch.setitem(node.plugins.settings, "exports", ExportSettings(siren=SIREN))
    got = treasurer.client.get("/treasurer/exports/fec", params=period, headers=HTML)
    assert got.status_code == 200
    assert f'filename="{SIREN}FEC{year}1231.txt"' in got.headers["content-disposition"]
    check_fec(got.content, this_year())
    assert (
        'id="fec-needs-siren"' not in treasurer.client.get("/treasurer/exports", headers=HTML).text
    )


def test_a_bad_period_is_explained_on_the_page(site: Any) -> None:
    from tests.people import operator

    treasurer = operator(site, "treasurer")
    for query, says in (
        ({"from": "2026-02-30"}, "année-mois-jour"),
        ({"from": "2026-05-01", "to": "2026-04-01"}, "au plus tard"),
    ):
        got = treasurer.client.get("/treasurer/exports/journal", params=query, headers=HTML)
        assert got.status_code == 422 and says in got.text
        assert 'value="2026-' in got.text  # what was typed is shown again


def test_only_the_treasurer_reaches_the_exports(site: Any) -> None:
    from tests.people import join, new_client, operator

    paths = ["/treasurer/exports"] + [f"/treasurer/exports/{w}" for w in service.EXPORTS]
    anonymous = new_client(site)
    others = [
        join(site, "Camille").client,
        operator(site, "admin").client,
        operator(site, "office").client,
    ]
    for path in paths:
        answer = anonymous.get(path, headers=HTML, follow_redirects=False)
        assert answer.status_code in (302, 303) and "/login" in answer.headers["location"]
        for client in others:
            assert client.get(path, headers=HTML).status_code == 403
    # The menu shows the page to the treasurer only.
    assert (
        'href="/treasurer/exports"'
        in operator(site, "treasurer").client.get("/treasurer", headers=HTML).text
    )
    assert 'href="/treasurer/exports"' not in others[1].get("/admin", headers=HTML).text


def test_the_treasurer_downloads_the_journal_in_the_browser(
    node: Any, open_browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from tests.conftest import OPERATORS
    from tests.test_browser import french
    from tests.test_browser_operators import flash, logged_in, submit

    topup = funded(node)
    page = logged_in(open_browser, OPERATORS["treasurer"][0], "/treasurer")
    page.click("header nav a[href='/treasurer/exports']")
    page.wait_for_url("**/treasurer/exports")
    expect(page.locator("h1")).to_have_text(french("Accounting exports"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    year = today().year
    expect(page.locator("#export-from")).to_have_value(f"{year}-01-01")
    with page.expect_download() as download:
        page.click("#export-journal button")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"sou-journal-{year}0101-{year}1231.csv"
    assert str(topup) in {r["transfer_id"] for r in csv.DictReader(saved.open(encoding="utf-8"))}
    # A period ending before it starts: the page says why, in French, and keeps the dates.
    page.fill("#export-from", f"{year}-05-01")
    page.fill("#export-to", f"{year}-04-01")
    assert submit(page, "#export-beancount").status == 422
    expect(flash(page)).to_have_text(french("The period must start on or before the day it ends."))
    expect(page.locator("#export-from")).to_have_value(f"{year}-05-01")
