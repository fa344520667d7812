"""The treasurer's dashboard and the general assembly's report: figures from a ledger built
with known movements on known days, the charts parsed as XML, the PDF read back with
pdftotext, the merchants' consent given then withdrawn, and the refusals."""

from __future__ import annotations

import shutil
import subprocess
import types
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as ET
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledger.signing
from audits.reports import charts, pdf, repository, service
from audits.reports.sections import ReportText, Section
from audits.reports.service import Period
from ledger.canonical import b64
from ledger.signing import SigningKey, new_order
from members import service as members
from members.access import Member
from tests.people import join, operator

SVG = "{http://www.w3.org/2000/svg}"
PERIOD = Period(date(2026, 3, 1), date(2026, 4, 30))


@dataclass
class Clock:
    """The ledger's and the orders' clock, set to noon (Paris) of the day a movement is made."""

    seconds: float = 0.0

    def __call__(self) -> float:
        return self.seconds

    def noon(self, day: date) -> None:
        moment = datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo("Europe/Paris"))
        self.seconds = moment.timestamp()


@dataclass
class Village:
    """The people of the known ledger: three residents' and merchants' wallets and keys."""

    node: Any
    clock: Clock
    keys: dict[str, SigningKey]
    people: dict[str, Member]

    def sign(self, owner_key: SigningKey, kind: str, **fields: Any) -> Any:
        fields = {("from" if k == "from_" else k): v for k, v in fields.items()}
        order = new_order(kind, owner_key, self.node.ledger.origin, now=self.clock(), **fields)
        return owner_key.sign(order)

    def role(self, owner: str, day: date, kind: str, **fields: Any) -> None:
        self.clock.noon(day)
        key = self.node.signing_key(owner)
        self.node.ledger.transfer(self.sign(key, kind, client_id=uuid.uuid4().hex, **fields))

    def pay(self, day: date, payer: str, payee: str, cents: int) -> None:
        self.clock.noon(day)
        who, to = self.people[payer], self.people[payee]
        signed = self.sign(
            self.keys[payer],
            "payment",
            from_=who.account,
            to=to.account,
            amount=cents,
            currency="SOU",
        )
        self.node.ledger.transfer(signed)

    def reconvert(self, day: date, merchant: str, cents: int, fee: int) -> None:
        self.clock.noon(day)
        who = self.people[merchant]
        signed = self.sign(
            self.keys[merchant],
            "redemption",
            from_=who.account,
            amount=cents,
            fee=fee,
            currency="SOU",
        )
        self.node.ledger.transfer(signed)


def _person(node: Any, name: str, role: str) -> Member:
    trade = {"trade_name": f"Chez {name}", "category": "food", "address": "1 place"}
    return members.join(
        node,
        display_name=name,
        email=f"{name.lower()}.{uuid.uuid4().hex[:6]}@village.test",
        password="correct horse battery",
        role=role,
        merchant=trade if role == "merchant" else None,
    )


def build(node: Any, monkeypatch: pytest.MonkeyPatch) -> Village:
    """March and April 2026 of a small village (amounts in cents of SOU):

    - 2 Mar: Alice tops up 100 by card; 3 Mar: Bob 50 at the office; 4 Mar: Un (a shop)
      200 by bank transfer. 10 Mar: Alice pays Un 30, Bob pays Deux 25.
    - 5 Apr: Alice pays Deux 10 and Trois 5; Un reconverts 100 (fee 2).
    - 6 Apr: series R of five 10-unit notes printed, three sent to the office, two sold.
    """
    clock = Clock()
    clock.noon(date(2026, 3, 1))
    node.ledger.clock = clock
    monkeypatch.setattr(ledger.signing, "time", types.SimpleNamespace(time=clock))
    people = {
        "alice": _person(node, "Alice", "resident"),
        "bob": _person(node, "Bob", "resident"),
        "un": _person(node, "Un", "merchant"),
        "deux": _person(node, "Deux", "merchant"),
        "trois": _person(node, "Trois", "merchant"),
    }
    keys = {}
    for name, member in people.items():
        keys[name] = SigningKey.generate()
        members.add_device_key(node, member, b64(keys[name].public_key), "phone")
    v = Village(node, clock, keys, people)
    v.role(
        "node",
        date(2026, 3, 2),
        "topup",
        to=people["alice"].account,
        amount=10_000,
        currency="SOU",
        source="card",
        rule="stripe",
    )
    v.role(
        "role:office:mairie",
        date(2026, 3, 3),
        "topup",
        to=people["bob"].account,
        amount=5_000,
        currency="SOU",
        source="office:mairie",
    )
    v.role(
        "role:treasurer",
        date(2026, 3, 4),
        "topup",
        to=people["un"].account,
        amount=20_000,
        currency="SOU",
        source="bank",
    )
    v.pay(date(2026, 3, 10), "alice", "un", 3_000)
    v.pay(date(2026, 3, 10), "bob", "deux", 2_500)
    v.pay(date(2026, 4, 5), "alice", "deux", 1_000)
    v.pay(date(2026, 4, 5), "alice", "trois", 500)
    v.reconvert(date(2026, 4, 5), "un", 10_000, 200)
    _notes(node, clock)
    return v


def _notes(node: Any, clock: Clock) -> None:
    from pos.notes import service as notes

    clock.noon(date(2026, 4, 6))
    treasurer = members.find_members(node, role="treasurer").members[0]
    office = members.find_members(node, role="office").members[0]
    notes.create_series(node, treasurer, "R", 1000, 5)
    notes.dispatch(node, treasurer, "R", 1, 3, "mairie")
    notes.sell(node, office, "R", 1, 2)


def consent(node: Any, v: Village, name: str, *answers: bool) -> None:
    for listed in answers:
        service.answer_consent(node, v.people[name], listed)


@pytest.fixture
def village(node: Any, monkeypatch: pytest.MonkeyPatch) -> Village:
    v = build(node, monkeypatch)
    consent(node, v, "un", True)
    consent(node, v, "trois", True, False)  # gave, then withdrew
    return v


# -- the figures ------------------------------------------------------------------------------


def test_figures_of_a_known_ledger(node: Any, village: Village) -> None:
    report = service.report(node, PERIOD)
    by_day = {d.day: d for d in report.days}
    assert len(report.days) == 61
    assert (by_day[date(2026, 3, 1)].units, by_day[date(2026, 3, 1)].euros) == (0, 0)
    assert (by_day[date(2026, 3, 2)].units, by_day[date(2026, 3, 2)].euros) == (10_000, 10_000)
    assert by_day[date(2026, 3, 4)].units == 35_000
    assert by_day[date(2026, 3, 10)].units == 35_000  # payments change no total
    # The reconversion takes 100 out; its 2 of fee stay with the association, in circulation.
    assert (by_day[date(2026, 4, 5)].units, by_day[date(2026, 4, 5)].euros) == (25_200, 25_200)
    closing = report.closing
    assert (closing.units, closing.euros, closing.paper, closing.digital) == (
        27_200,
        27_200,
        2_000,
        25_200,
    )
    march, april = report.months
    assert (march.card, march.office, march.bank, march.reconversions) == (10_000, 5_000, 20_000, 0)
    assert (april.topups, april.reconversions) == (0, 10_000)
    assert (march.payments, april.payments) == (5_500, 1_500)
    assert march.average_units == Decimal(1_005_000) / 31
    assert march.velocity == Decimal("0.17")  # 5 500 / 32 419.35
    assert april.velocity == Decimal("0.05")  # 1 500 / 28 173.33
    # Only Un agreed to be named (Trois withdrew, Deux never answered).
    assert [(m.name, m.received) for m in report.merchants] == [("Chez Un", 3_000)]
    assert [(s.series, s.in_circulation, s.units) for s in report.paper_series] == [("R", 2, 2_000)]


def test_a_period_before_any_movement_is_all_zero(node: Any, village: Village) -> None:
    report = service.report(node, Period(date(2026, 2, 1), date(2026, 2, 28)))
    assert {(d.units, d.euros) for d in report.days} == {(0, 0)}
    assert report.months[0].velocity is None
    assert report.merchants == []


@pytest.mark.parametrize(
    ("first", "last", "code"),
    [
        ("2026-05-01", "2026-04-01", "period_backwards"),
        ("2020-01-01", "2026-01-01", "period_too_long"),
        ("2026-02-30", "2026-03-01", "bad_day"),
        ("yesterday", None, "bad_day"),
    ],
)
def test_refused_periods(first: str, last: str | None, code: str) -> None:
    with pytest.raises(Exception) as refused:
        service.read_period(first, last, date(2026, 12, 3))
    assert getattr(refused.value, "code", None) == code


def test_default_period_is_twelve_whole_months() -> None:
    period = service.read_period(None, None, date(2026, 2, 14))
    assert (period.first, period.last) == (date(2025, 3, 1), date(2026, 2, 14))
    assert len(period.months()) == 12


# -- the charts -------------------------------------------------------------------------------


def _points(svg: str, series: str) -> list[tuple[float, float]]:
    root = ET.fromstring(svg)
    for line in root.iter(f"{SVG}polyline"):
        if line.get("data-series") == series:
            return [
                (float(x), float(y)) for x, y in (p.split(",") for p in line.get("points").split())
            ]
    raise AssertionError(f"no line {series}")


def _affine(values: list[int], ys: list[float]) -> None:
    """Each point's height is the same affine function of its value (higher value, higher)."""
    low, high = min(values), max(values)
    if low == high:
        assert len(set(ys)) == 1
        return
    y_low = ys[values.index(low)]
    y_high = ys[values.index(high)]
    assert y_high < y_low
    for value, y in zip(values, ys, strict=True):
        expected = y_low + (value - low) * (y_high - y_low) / (high - low)
        assert abs(y - expected) <= 0.15


def test_circulation_chart_follows_the_days(node: Any, village: Village) -> None:
    from audits.reports import sections

    report = service.report(node, PERIOD)
    writer = sections.Writer(lambda s: s, "fr", "SOU", str)
    text = sections.write(report, writer, "Village")
    svg = next(s for s in text.sections if s.key == "circulation").svg
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == "Units in circulation and euros in reserve"
    assert "272" in root.find(f"{SVG}desc").text
    assert root.get("viewBox") == "0 0 360 220" and root.get("role") == "img"
    points = _points(svg, "Circulation")
    assert len(points) == 61
    _affine([d.units for d in report.days], [y for _, y in points])
    xs = [x for x, _ in points]
    assert xs == sorted(xs) and xs[0] >= charts.LEFT and xs[-1] <= charts.WIDTH - charts.RIGHT
    bars = next(s for s in text.sections if s.key == "flows").svg
    values = [
        int(r.get("data-value"))
        for g in ET.fromstring(bars).iter(f"{SVG}g")
        if g.get("data-series") == "Top-ups"
        for r in g.iter(f"{SVG}rect")
    ]
    assert values == [35_000, 0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-(10**9), max_value=10**9), min_size=1, max_size=40))
def test_any_line_is_drawn_to_scale(values: list[int]) -> None:
    svg = charts.line_chart(
        "c", "t", "d", [str(i) for i in range(len(values))], [charts.Series("s", values)], str
    )
    ys = [y for _, y in _points(svg, "s")]
    assert all(charts.TOP - 0.05 <= y <= charts.HEIGHT - charts.BOTTOM + 0.05 for y in ys)
    _affine(values, ys)
    bottom, top, step = charts.y_scale(values)
    assert bottom <= min(values) and top >= max(values) and (top - bottom) // step <= 5


# -- the pages and the PDF --------------------------------------------------------------------


def test_dashboard_shows_tables_and_charts(site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    v = build(site.app.state.node, monkeypatch)
    consent(v.node, v, "un", True)
    treasurer = operator(site, "treasurer")
    answer = treasurer.get(
        "/treasurer/dashboard", params={"first": "2026-03-01", "last": "2026-04-30"}
    )
    assert answer.status_code == 200, answer.text
    html = answer.text
    assert html.count("<svg") == 4 and '<title id="chart-circulation-title">' in html
    assert "Chez Un" in html and "Chez Deux" not in html
    assert "272,00\u00a0SOU" in html or "272,00 SOU" in html
    assert 'href="/treasurer/dashboard"' in html  # the menu entry
    assert "Du 1er mars 2026 au 30 avr. 2026" in html  # the first of a month, as French writes it
    english = treasurer.get(
        "/treasurer/dashboard", params={"first": "2026-03-01", "last": "2026-04-30", "lang": "en"}
    )
    assert (
        "Units in circulation and euros in reserve" in english.text and "272.00 SOU" in english.text
    )
    assert "From 1 Mar 2026 to 30 Apr 2026" in english.text


def _pdf_text(body: bytes, tmp_path: Path) -> str:
    assert shutil.which("pdftotext"), "poppler-utils is needed to read the PDF back"
    path = tmp_path / "report.pdf"
    path.write_bytes(body)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_pdf_report_shows_the_figures_and_only_consenting_merchants(
    site: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lang: str
) -> None:
    v = build(site.app.state.node, monkeypatch)
    consent(v.node, v, "un", True)
    consent(v.node, v, "trois", True, False)
    treasurer = operator(site, "treasurer")
    answer = treasurer.get(
        "/treasurer/dashboard/report.pdf",
        params={"first": "2026-03-01", "last": "2026-04-30", "lang": lang},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    text = _pdf_text(answer.content, tmp_path)
    if lang == "fr":
        assert "Unités en circulation et euros en réserve" in text
        for figure in ("272,00 SOU", "350,00 EUR", "100,00 SOU", "0,17", "20,00 SOU"):
            assert figure in text, figure
    else:
        assert "Units in circulation and euros in reserve" in text
        for figure in ("272.00 SOU", "350.00 EUR", "100.00 SOU", "0.17", "20.00 SOU"):
            assert figure in text, figure
    assert "Chez Un" in text and "30" in text
    assert "Chez Deux" not in text and "Chez Trois" not in text


def test_consent_given_then_withdrawn(site: Any) -> None:
    node = site.app.state.node
    shop = join(site, "Quatre", "merchant")
    page = shop.get("/merchant/listing")
    assert page.status_code == 200 and 'id="consent-state"' in page.text
    assert "pas" in page.text or "not named" in page.text
    given = shop.post(
        "/merchant/listing", data={"listed": "yes", "csrf": shop.csrf}, follow_redirects=False
    )
    assert given.status_code == 303, given.text
    with node.ledger.reading() as conn:
        assert repository.listed_members(conn) == [shop.id]
    thanked = shop.get(given.headers["location"]).text
    assert "Merci" in thanked and "Votre commerce peut être nommé" in thanked
    withdrawn = shop.post(
        "/merchant/listing", data={"listed": "no", "csrf": shop.csrf}, follow_redirects=False
    )
    assert withdrawn.status_code == 303
    with node.ledger.reading() as conn:
        assert repository.listed_members(conn) == []
        both = repository.consent_of(conn, shop.id)
    assert both is not None and both.listed is False and both.recorded_ms > 0


def test_consent_is_the_merchants_own(site: Any) -> None:
    node = site.app.state.node
    resident = join(site, "Cinq")
    refused = resident.post("/merchant/listing", data={"listed": "yes", "csrf": resident.csrf})
    assert refused.status_code == 403
    treasurer = operator(site, "treasurer")
    assert treasurer.post("/merchant/listing", data={"listed": "yes"}).status_code == 403
    shop = join(site, "Six", "merchant")
    bad = shop.post("/merchant/listing", data={"listed": "maybe", "csrf": shop.csrf})
    assert bad.status_code == 422
    with node.ledger.reading() as conn:
        assert repository.listed_members(conn) == []
        assert repository.consent_of(conn, shop.id) is None


def test_dashboard_refusals(site: Any) -> None:
    treasurer = operator(site, "treasurer")
    backwards = treasurer.get(
        "/treasurer/dashboard", params={"first": "2026-05-01", "last": "2026-04-01"}
    )
    assert backwards.status_code == 400
    assert "commence après" in backwards.text and 'name="first"' in backwards.text
    long = treasurer.get(
        "/treasurer/dashboard/report.pdf", params={"first": "2010-01-01", "last": "2026-01-01"}
    )
    assert long.status_code == 400
    merchant = join(site, "Sept", "merchant")
    assert merchant.get("/treasurer/dashboard").status_code == 403
    assert merchant.get("/treasurer/dashboard/report.pdf").status_code == 403
    assert operator(site, "admin").get("/treasurer/dashboard").status_code == 403
    anonymous = site.get("/treasurer/dashboard", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_the_dashboard_shows_twelve_months_by_default(site: Any) -> None:
    answer = operator(site, "treasurer").get("/treasurer/dashboard")
    assert answer.status_code == 200
    assert answer.text.count('<th scope="row">') >= 12  # a row a month at least
    assert 'id="report-pdf"' in answer.text and "prend un moment" in answer.text


# -- `sou report` -----------------------------------------------------------------------------


def test_sou_report_writes_the_pdf(
    node: Any, village: Village, node_settings: Any, tmp_path: Path
) -> None:
    import typer
    from typer.testing import CliRunner

    from audits.reports import plugin

    cli = typer.Typer()
    cli.callback()(lambda: None)  # a group: commands are called by name, as in `sou`
    plugin.sou_commands(cli=cli)
    env = {
        "SOU_DATA_DIR": str(node_settings.data_dir),
        "SOU_DATABASE_URL": node_settings.database_url,
    }
    helped = CliRunner().invoke(cli, ["report", "--help"], env=env)
    assert helped.exit_code == 0 and "--first" in helped.output
    out = tmp_path / "ag.pdf"
    args = [
        "report",
        "--first",
        "2026-03-01",
        "--last",
        "2026-04-30",
        "--lang",
        "en",
        "-o",
        str(out),
    ]
    written = CliRunner().invoke(cli, args, env=env)
    assert written.exit_code == 0, written.output
    text = _pdf_text(out.read_bytes(), tmp_path)
    assert "272.00 SOU" in text and "Chez Un" in text and "Chez Trois" not in text
    backwards = CliRunner().invoke(
        cli, ["report", "--first", "2026-05-01", "--last", "2026-04-01"], env=env
    )
    assert backwards.exit_code == 2 and "starts after it ends" in backwards.output
    assert CliRunner().invoke(cli, ["report", "--lang", "de"], env=env).exit_code == 2


@pytest.mark.one_database
def test_the_pdf_writes_every_letter_of_the_village(tmp_path: Path) -> None:
    """Not only Latin-1: French's œ, narrow spaces and euro sign, and other alphabets."""
    words = "Œuvres du lavoir — Łódź, Ελλάδα, 1\u202f234,50\u202f€"
    made = pdf.as_pdf(
        ReportText(
            "Rapport à l’assemblée",
            [words],
            [Section("s", "Chez Zoë", header=["Commerce", "Reçu"], rows=[["Chez Œdipe", "3"]])],
        )
    )
    text = _pdf_text(made, tmp_path)
    for shown in ("Rapport à l’assemblée", "Œuvres du lavoir", "Łódź", "Ελλάδα", "€", "Chez Œdipe"):
        assert shown in text, (shown, text)
    assert "1\u202f234,50" in text or "1 234,50" in text


@pytest.mark.parametrize(
    ("lang", "findings", "said"),
    [
        ("fr", 1, "Le dernier audit complet, le jeudi, a trouvé 1 problème."),
        ("fr", 3, "Le dernier audit complet, le jeudi, a trouvé 3 problèmes."),
        ("en", 1, "The latest full audit, on Thursday, found 1 problem."),
        ("en", 3, "The latest full audit, on Thursday, found 3 problems."),
    ],
)
def test_the_audits_findings_are_counted_in_the_readers_plural(
    lang: str, findings: int, said: str
) -> None:
    from types import SimpleNamespace

    from audits.reports import sections
    from web.i18n import translations

    catalogue = translations(lang)
    writer = sections.Writer(
        catalogue.gettext,
        lang,
        "SOU",
        lambda ms: {"fr": "jeudi"}.get(lang, "Thursday"),
        catalogue.ngettext,
    )
    run = service.AuditStatus(1, 2, ok=False, findings=findings, full=True)
    section = sections._audit(SimpleNamespace(audit=run), writer)  # type: ignore[arg-type]
    assert section.notes == [said]
