"""The report written out in the reader's language: its sections, each a heading, a few
lines, a chart (SVG text) and a table. The dashboard and the PDF show the same sections."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_decimal

from audits.reports import charts
from audits.reports.service import DayFigures, Report
from web.i18n import first_day, money

DAILY_ROWS = 62  # up to two months, a row a day; past that, a row a month (its last day)


@dataclass(frozen=True)
class Section:
    key: str
    heading: str
    notes: list[str] = field(default_factory=list)
    svg: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class ReportText:
    title: str
    intro: list[str]
    sections: list[Section]


@dataclass(frozen=True)
class Writer:
    """How the reader writes things: their language's words, figures and dates."""

    gettext: Callable[[str], str]
    lang: str
    currency: str
    when: Callable[[int], str]
    ngettext: Callable[[str, str, int], str] = lambda one, many, n: one if n == 1 else many

    def _(self, message: str, **values: object) -> str:
        return self.gettext(message).format(**values)

    def counted(self, one: str, many: str, n: int, **values: object) -> str:
        """A message that counts `n`, in the reader's plural ({n} in it)."""
        return self.ngettext(one, many, n).format(n=n, **values)

    def units(self, cents: int) -> str:
        return money(cents, self.lang, self.currency)

    def euros(self, cents: int) -> str:
        return money(cents, self.lang, "EUR")

    def whole(self, cents: int) -> str:
        """An axis' figure: whole units, grouped as the reader does."""
        return str(format_decimal(Decimal(cents).scaleb(-2), format="#,##0.##", locale=self.lang))

    def day(self, moment: date) -> str:
        return first_day(format_date(moment, "d MMM yyyy", locale=self.lang), moment.day, self.lang)

    def short_day(self, moment: date) -> str:
        return first_day(format_date(moment, "d MMM", locale=self.lang), moment.day, self.lang)

    def month(self, moment: date) -> str:
        return str(format_date(moment, "MMM yyyy", locale=self.lang))

    def ratio(self, value: Decimal | None) -> str:
        if value is None:
            return "—"
        return str(format_decimal(value, format="0.00", locale=self.lang))


def write(report: Report, w: Writer, village: str) -> ReportText:
    period = w._(
        "From {first} to {last}", first=w.day(report.period.first), last=w.day(report.period.last)
    )
    return ReportText(
        w._("Treasurer's report: {village}", village=village),
        [period, w._("Made on {moment}, from the ledger.", moment=w.when(report.made_ms))],
        [
            _circulation(report, w),
            _flows(report, w),
            _velocity(report, w),
            _paper(report, w),
            _merchants(report, w),
            _audit(report, w),
        ],
    )


def _circulation(report: Report, w: Writer) -> Section:
    days = report.days
    closing = report.closing
    title = w._("Units in circulation and euros in reserve")
    desc = w._(
        "Line chart, one point a day from {first} to {last}. At the end: {units} in "
        "circulation, {euros} in reserve.",
        first=w.day(days[0].day),
        last=w.day(closing.day),
        units=w.units(closing.units),
        euros=w.euros(closing.euros),
    )
    svg = charts.line_chart(
        "chart-circulation",
        title,
        desc,
        [w.short_day(d.day) for d in days],
        [
            charts.Series(w._("Circulation"), [d.units for d in days]),
            charts.Series(w._("Reserve"), [d.euros for d in days]),
        ],
        w.whole,
    )
    shown = days if len(days) <= DAILY_ROWS else _month_ends(days)
    notes = [desc]
    if shown is not days:
        notes.append(w._("The table gives each month's last day."))
    return Section(
        "circulation",
        title,
        notes,
        svg,
        [w._("Day"), w._("Circulation"), w._("Reserve"), w._("Reserve minus circulation")],
        [
            [w.day(d.day), w.units(d.units), w.euros(d.euros), w.euros(d.euros - d.units)]
            for d in shown
        ],
    )


def _month_ends(days: Sequence[DayFigures]) -> list[DayFigures]:
    return [
        d for i, d in enumerate(days) if i == len(days) - 1 or days[i + 1].day.month != d.day.month
    ]


def _flows(report: Report, w: Writer) -> Section:
    months = report.months
    title = w._("Top-ups and reconversions per month")
    desc = w._(
        "Bar chart, two bars a month: euros brought in by top-ups (card, office and bank) "
        "and units reconverted to euros. Over the period: {topups} in, {out} reconverted.",
        topups=w.euros(sum(m.topups for m in months)),
        out=w.units(sum(m.reconversions for m in months)),
    )
    svg = charts.bar_chart(
        "chart-flows",
        title,
        desc,
        [w.month(m.month) for m in months],
        [
            charts.Series(w._("Top-ups"), [m.topups for m in months]),
            charts.Series(w._("Reconversions"), [m.reconversions for m in months]),
        ],
        w.whole,
    )
    return Section(
        "flows",
        title,
        [desc],
        svg,
        [w._("Month"), w._("Card"), w._("Office"), w._("Bank"), w._("Reconversions")],
        [
            [
                w.month(m.month),
                w.euros(m.card),
                w.euros(m.office),
                w.euros(m.bank),
                w.units(m.reconversions),
            ]
            for m in months
        ],
    )


def _velocity(report: Report, w: Writer) -> Section:
    months = report.months
    title = w._("Velocity per month")
    desc = w._(
        "Bar chart, one bar a month: the units paid between members divided by the month's "
        "average circulation. A velocity of 1 means each unit changed hands once."
    )
    hundredths = [int((m.velocity or 0) * 100) for m in months]
    svg = charts.bar_chart(
        "chart-velocity",
        title,
        desc,
        [w.month(m.month) for m in months],
        [charts.Series(w._("Velocity"), hundredths)],
        lambda v: w.ratio(Decimal(v).scaleb(-2)),
    )
    return Section(
        "velocity",
        title,
        [desc],
        svg,
        [w._("Month"), w._("Payments"), w._("Average circulation"), w._("Velocity")],
        [
            [
                w.month(m.month),
                w.units(m.payments),
                w.units(int(m.average_units)),
                w.ratio(m.velocity),
            ]
            for m in months
        ],
    )


def _paper(report: Report, w: Writer) -> Section:
    closing = report.closing
    title = w._("Paper and digital units in circulation")
    desc = w._(
        "Bar chart on {day}: {paper} in paper notes, {digital} in digital units.",
        day=w.day(closing.day),
        paper=w.units(closing.paper),
        digital=w.units(closing.digital),
    )
    svg = charts.bar_chart(
        "chart-paper",
        title,
        desc,
        [w._("Paper"), w._("Digital")],
        [charts.Series(w._("Units"), [closing.paper, closing.digital])],
        w.whole,
    )
    rows = [[w._("Paper"), w.units(closing.paper)], [w._("Digital"), w.units(closing.digital)]]
    notes = [desc]
    if report.paper_series:
        notes.append(
            w._(
                "Paper notes in circulation today, by series: {series}.",
                series=", ".join(
                    w._(
                        "{series}: {count} × {value} = {units}",
                        series=s.series,
                        count=s.in_circulation,
                        value=w.units(s.denomination),
                        units=w.units(s.units),
                    )
                    for s in report.paper_series
                ),
            )
        )
    return Section("paper", title, notes, svg, [w._("Paper or digital"), w._("Units")], rows)


def _merchants(report: Report, w: Writer) -> Section:
    title = w._("Most active merchants")
    notes = [
        w._(
            "By units received in payments over the period. Only merchants who agreed to be "
            "named are listed."
        )
    ]
    if not report.merchants:
        notes.append(w._("No merchant who agreed to be named received a payment."))
    return Section(
        "merchants",
        title,
        notes,
        "",
        [w._("Rank"), w._("Merchant"), w._("Received")],
        [
            [str(rank), m.name, w.units(m.received)]
            for rank, m in enumerate(report.merchants, start=1)
        ],
    )


def _audit(report: Report, w: Writer) -> Section:
    title = w._("Audit of the ledger")
    run = report.audit
    if run is None:
        return Section("audit", title, [w._("No audit has been run yet: run `sou audit`.")])
    scope = w._("full audit") if run.full else w._("audit of the latest movements")
    if run.finished_ms is None:
        said = w._("An audit started on {moment} has not finished.", moment=w.when(run.started_ms))
    elif run.ok:
        said = w._(
            "The latest {scope}, on {moment}, found nothing wrong.",
            scope=scope,
            moment=w.when(run.finished_ms),
        )
    else:
        said = w.counted(
            "The latest {scope}, on {moment}, found {n} problem.",
            "The latest {scope}, on {moment}, found {n} problems.",
            run.findings,
            scope=scope,
            moment=w.when(run.finished_ms),
        )
    return Section("audit", title, [said])
