"""The figures of the treasurer's dashboard and of the general assembly's report, read from
the ledger, and the merchants' consents to be named in them.

- Circulation: the local units outstanding (members' wallets, escrows, the association's
  own accounts, paper notes sold), and the euros of the backing accounts (reserve, Stripe's
  balance, the offices' tills), at the end of each day of the period.
- Flows, per month: top-ups by card, at an office and by bank transfer (euros in), against
  reconversions (units a merchant took out, fee included); payments between members.
- Velocity, per month: the payments between members divided by the month's average
  circulation (the mean of its days' closing figures).
- Paper and digital units in circulation at the end of the period (the ledger's
  `notes:circulation` account), and the paper notes by series now (the notes' service).
- The most active merchants by units received in payments, only those whose latest answer
  is a consent to be listed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from audits import service as audit_runs
from audits.reports import errors
from audits.reports import repository as repo
from members import service as members
from members.access import Member
from runtime.node import Node

MAX_DAYS = 1100  # three years and a little: a general assembly looks at one or two
TOP_MERCHANTS = 10
DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Period:
    """From the first to the last day, both included, in the node's time zone."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(n) for n in range((self.last - self.first).days + 1)]

    def months(self) -> list[date]:
        """The first day of each month the period touches."""
        found, month = [], self.first.replace(day=1)
        while month <= self.last:
            found.append(month)
            month = (month + timedelta(32)).replace(day=1)
        return found


def read_period(first: str | None, last: str | None, today: date) -> Period:
    """The period a form names (ISO days); the twelve months up to today when it names none."""
    try:
        end = date.fromisoformat(last) if last else today
        start = date.fromisoformat(first) if first else _year_before(end)
    except ValueError:
        raise errors.BAD_DAY() from None
    if start > end:
        raise errors.PERIOD_BACKWARDS()
    if (end - start).days + 1 > MAX_DAYS:
        raise errors.PERIOD_TOO_LONG(days=MAX_DAYS)
    return Period(start, end)


def _year_before(end: date) -> date:
    """The first day of the month eleven months before `end`'s: twelve whole months."""
    month = end.month - 11
    year = end.year + (month - 1) // 12
    return date(year, (month - 1) % 12 + 1, 1)


@dataclass(frozen=True)
class DayFigures:
    day: date
    units: int  # local units outstanding at the end of the day (cents)
    euros: int  # euros in the backing accounts (cents)
    paper: int  # of the units, paper notes in circulation

    @property
    def digital(self) -> int:
        return self.units - self.paper


@dataclass(frozen=True)
class MonthFigures:
    month: date
    card: int  # top-ups by card (cents of euros in)
    office: int  # top-ups at an exchange office
    bank: int  # top-ups by bank transfer
    reconversions: int  # units reconverted to euros (fees included)
    payments: int  # units paid between members
    average_units: Decimal  # mean circulation of the month's days in the period
    velocity: Decimal | None  # payments / average circulation (none while nothing circulates)

    @property
    def topups(self) -> int:
        return self.card + self.office + self.bank


@dataclass(frozen=True)
class MerchantFigures:
    member_id: str
    name: str
    received: int


@dataclass(frozen=True)
class PaperSeries:
    series: str
    denomination: int
    in_circulation: int  # notes
    units: int


@dataclass(frozen=True)
class AuditStatus:
    """The latest `sou audit` run (`audits.service.latest_run`)."""

    started_ms: int
    finished_ms: int | None
    ok: bool
    findings: int
    full: bool


@dataclass(frozen=True)
class Report:
    period: Period
    days: list[DayFigures]
    months: list[MonthFigures]
    merchants: list[MerchantFigures]
    paper_series: list[PaperSeries]
    audit: AuditStatus | None
    made_ms: int

    @property
    def closing(self) -> DayFigures:
        return self.days[-1]


def report(node: Node, period: Period) -> Report:
    """Every figure of the period, read in one consistent view of the ledger."""
    zone = ZoneInfo(node.settings.timezone)
    bounds = _day_bounds(period, zone)
    start_ms, end_ms = bounds[0][0], bounds[-1][1]
    with node.ledger.reading() as conn:
        opening = repo.standing_before(conn, start_ms)
        changes = repo.changes(conn, start_ms, end_ms)
        legs = repo.flow_legs(conn, start_ms, end_ms)
        listed = repo.listed_members(conn)
        received = repo.received_by(conn, [f"member:{m}" for m in listed], start_ms, end_ms)
        audit = audit_status(conn)
    days = _days(period, bounds, opening, changes)
    return Report(
        period,
        days,
        _months(period, days, legs, zone),
        _merchants(node, received),
        paper_series(node),
        audit,
        now_ms(),
    )


def _day_bounds(period: Period, zone: ZoneInfo) -> list[tuple[int, int]]:
    """[start, end) of each day of the period in milliseconds, midnight to midnight."""

    def midnight(day: date) -> int:
        return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)

    return [(midnight(d), midnight(d + timedelta(1))) for d in period.days]


def _days(
    period: Period,
    bounds: list[tuple[int, int]],
    opening: tuple[int, int, int],
    changes: Sequence[Any],
) -> list[DayFigures]:
    units, euros, paper = opening
    found: list[DayFigures] = []
    pending: Iterator[Any] = iter(changes)
    upcoming = next(pending, None)
    for day, (_, end) in zip(period.days, bounds, strict=True):
        while upcoming is not None and upcoming.created_ms < end:
            units += int(upcoming.units)
            euros += int(upcoming.euros)
            paper += int(upcoming.paper)
            upcoming = next(pending, None)
        found.append(DayFigures(day, units, euros, paper))
    return found


def _local_day(ms: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).date()


def _months(
    period: Period, days: list[DayFigures], legs: Sequence[Any], zone: ZoneInfo
) -> list[MonthFigures]:
    sums: dict[date, dict[str, int]] = {
        m: dict.fromkeys(("card", "office", "bank", "reconversions", "payments"), 0)
        for m in period.months()
    }
    for leg in legs:
        what = _flow(leg)
        if what is not None:
            sums[_local_day(leg.created_ms, zone).replace(day=1)][what] += abs(int(leg.amount))
    found = []
    for month, figures in sums.items():
        closing = [d.units for d in days if d.day.replace(day=1) == month]
        average = Decimal(sum(closing)) / len(closing)
        velocity = None
        if average > 0:
            velocity = (Decimal(figures["payments"]) / average).quantize(
                Decimal("0.01"), ROUND_HALF_UP
            )
        found.append(MonthFigures(month, average_units=average, velocity=velocity, **figures))
    return found


_TOPUP_SOURCES = {"clearing": "card", "office_cash": "office", "reserve": "bank"}


def _flow(leg: Any) -> str | None:
    """Which sum a leg of a top-up, reconversion or payment counts in (each transfer has
    exactly one such leg): the euros' way in, the member's units out, the payee's in."""
    if leg.kind == "topup":
        return _TOPUP_SOURCES.get(leg.account_kind)
    if leg.account_kind != "member":
        return None
    if leg.kind == "redemption":
        return "reconversions"
    if leg.amount > 0:  # a payment's (or collection's) payee
        return "payments"
    return None


def _merchants(node: Node, received: dict[str, int]) -> list[MerchantFigures]:
    """The listed merchants who received most, still merchants today, named as their shop."""
    ranked = sorted(received.items(), key=lambda item: (-item[1], item[0]))
    ids = {code.removeprefix("member:") for code, _ in ranked}
    names = members.names(node, ids)
    found = []
    for code, cents in ranked:
        member_id = code.removeprefix("member:")
        member = members.find_member(node, member_id)
        if member is None or member.role != "merchant":
            continue
        found.append(MerchantFigures(member_id, names.get(member_id, member_id), cents))
        if len(found) == TOP_MERCHANTS:
            break
    return found


def paper_series(node: Node) -> list[PaperSeries]:
    """The paper notes in circulation now, by series, as the notes' service counts them."""
    # The one arrow from this slice to another feature (pyproject.toml's contract allows it).
    from pos.notes import service as notes

    return [
        PaperSeries(
            s.series.id, s.series.denomination, s.circulation, s.circulation * s.series.denomination
        )
        for s in notes.summaries(node)
        if s.circulation
    ]


def audit_status(conn: Any) -> AuditStatus | None:
    """The latest audit run that came to an outcome (`audits.service.latest_run`); None
    before any."""
    run = audit_runs.latest_run(conn)
    if run is None:
        return None
    return AuditStatus(run.started_ms, run.finished_ms, run.ok, run.findings, bool(run.full))


# -- the merchants' consent -------------------------------------------------------------------


@dataclass(frozen=True)
class Consent:
    listed: bool
    recorded_ms: int | None  # when the merchant last answered; None: never (not listed)


def consent_of(node: Node, member: Member) -> Consent:
    with node.ledger.reading() as conn:
        row = repo.consent_of(conn, member.id)
    return Consent(False, None) if row is None else Consent(bool(row.listed), row.recorded_ms)


def answer_consent(node: Node, member: Member, listed: bool) -> Consent:
    """A merchant gives (`listed`) or withdraws their consent to be named among the most
    active merchants; each answer is kept with its moment. Refused to anyone else."""
    if member.role != "merchant":
        raise errors.NOT_A_MERCHANT()
    moment = now_ms()
    with node.engine.begin() as conn:
        repo.record_consent(conn, member.id, listed, moment)
    return Consent(listed, moment)
