"""What the treasurer watches beside the ledger's consistency, measured by the audit:

- the backing at the end of every day: euros in the backing accounts against units
  outstanding (digital and paper). A day that ended with more units than euros is an
  *emergency*, even if the reserve was made whole since: members could not all have
  reconverted that evening.
- the ACPR watch: payments between members over the last 365 days against the EUR 1,000,000
  a year above which the French supervisor's exemption for local currencies ends (a
  *warning* from 80 %).

Both are kept as running totals in the audit's state, so that a resumed audit reads only
the transfers after it.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from sqlalchemy import Connection, case, func, select

from audits.report import EMERGENCY, WARNING, AuditState, Report, finding, later
from ledger.chart import RULES, Chart, kind_of
from ledger.errors import LedgerError
from ledger.models import accounts, postings, transfers

DAY_MS = 86_400_000
YEAR_DAYS = 365
# What the ACPR counts as the currency's payments: members paying one another, a shop or a
# plugin's escrow (a basket, a pledge), not euros coming in or going out.
PAYMENT_KINDS = ("payment", "collection", "escrow_payment")
ACPR_WARNING_SHARE = 0.8
ACPR_CEILING = 100_000_000  # EUR 1,000,000 a year, in cents


def day_of(day: int) -> str:
    return date.fromordinal(date(1970, 1, 1).toordinal() + day).isoformat()


def watch(
    conn: Connection,
    chart: Chart,
    since: AuditState | None,
    after: int | None,
    report: Report,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Check the backing day by day and measure the ACPR watch from the transfers after
    `after`, continuing `since`'s running totals; return the totals for the next state."""
    today = (now_ms if now_ms is not None else int(time.time() * 1000)) // DAY_MS
    backing, outstanding = (since.backing, since.outstanding) if since else (0, 0)
    last_day = since.day if since else None
    for day, euros, units in _daily_backing(conn, chart, after):
        backing, outstanding, last_day = backing + euros, outstanding + units, day
        margin = backing - outstanding
        if report.watch.lowest_margin is None or margin < report.watch.lowest_margin:
            report.watch.lowest_margin, report.watch.lowest_margin_day = margin, day_of(day)
        if margin < 0:
            report.findings.append(
                finding(
                    "backing",
                    "on {day} the day ended with {outstanding} {local} cents outstanding but "
                    "only {backing} EUR cents in reserve",
                    day=day_of(day),
                    outstanding=outstanding,
                    local=chart.local,
                    backing=backing,
                    severity=EMERGENCY,
                )
            )
    payments = {
        day: cents
        for day, cents in (since.payments if since else {}).items()
        if int(day) > today - YEAR_DAYS
    }
    for day, cents in _daily_payments(conn, chart, after, (today - YEAR_DAYS + 1) * DAY_MS):
        payments[str(day)] = payments.get(str(day), 0) + cents
    _acpr(sum(payments.values()), report)
    return {"day": last_day, "backing": backing, "outstanding": outstanding, "payments": payments}


def _daily_backing(conn: Connection, chart: Chart, after: int | None) -> list[tuple[int, int, int]]:
    """Per day: what the transfers after `after` added to the euros backing and to the units
    outstanding. Units outstanding change by what the other local accounts (issuance, the
    notes' stock) lose, as a transfer's local postings sum to zero: only those few accounts
    are read, not every member's."""
    backing_ids: list[int] = []
    issuing_ids: list[int] = []
    for account_id, code in conn.execute(select(accounts.c.id, accounts.c.code)):
        try:
            rule = RULES[kind_of(code)]
        except LedgerError:
            continue
        if rule.backing:
            backing_ids.append(account_id)
        elif not rule.outstanding and chart.currency_of(code) == chart.local:
            issuing_ids.append(account_id)
    p, t = postings, transfers
    day = (t.c.created_ms // DAY_MS).label("day")
    is_backing = p.c.account_id.in_(backing_ids)
    query = (
        select(
            day,
            func.sum(case((is_backing, p.c.amount), else_=0)),
            func.sum(case((is_backing, 0), else_=-p.c.amount)),
        )
        .join(t, t.c.id == p.c.transfer_id)
        .where(later(t.c.id, after), p.c.account_id.in_(backing_ids + issuing_ids))
        .group_by(day)
        .order_by(day)
    )
    return [(int(d), int(e), int(u)) for d, e, u in conn.execute(query)]


def _daily_payments(
    conn: Connection, chart: Chart, after: int | None, from_ms: int
) -> list[tuple[int, int]]:
    p, t = postings, transfers
    day = (t.c.created_ms // DAY_MS).label("day")
    query = (
        select(day, func.sum(-p.c.amount))
        .join(t, t.c.id == p.c.transfer_id)
        .where(
            later(t.c.id, after),
            t.c.created_ms >= from_ms,
            t.c.kind.in_(PAYMENT_KINDS),
            p.c.amount < 0,
            p.c.currency == chart.local,
        )
        .group_by(day)
    )
    return [(int(d), int(c)) for d, c in conn.execute(query)]


def _acpr(paid: int, report: Report) -> None:
    report.watch.payments_12_months, report.watch.acpr_ceiling = paid, ACPR_CEILING
    share = report.watch.acpr_share
    if share >= 1:
        said = finding(
            "acpr",
            "payments over the last 12 months ({euros} EUR) are above the EUR 1,000,000 a year "
            "the ACPR exemption allows: the association must declare it",
            euros=paid // 100,
            severity=WARNING,
        )
    elif share >= ACPR_WARNING_SHARE:
        said = finding(
            "acpr",
            "payments over the last 12 months ({euros} EUR) have reached {percent}% of the "
            "EUR 1,000,000 a year the ACPR exemption allows",
            euros=paid // 100,
            percent=int(f"{share * 100:.0f}"),  # as "{share:.0%}" rounds it
            severity=WARNING,
        )
    else:
        return
    report.findings.append(said)
