"""Every query of the reports: sums of the ledger's postings by kind of account, and the
merchants' consents (this slice's own table). The ledger's tables are read, never written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, select

from audits.reports.models import report_consents
from ledger.chart import BACKING_KINDS, OUTSTANDING_KINDS, Kind
from ledger.models import accounts, postings, transfers

OUTSTANDING = tuple(k.value for k in OUTSTANDING_KINDS)
BACKING = tuple(k.value for k in BACKING_KINDS)
PAPER = (Kind.NOTES_CIRCULATION.value,)
# The transfers whose flows the report counts: euros in, euros out, payments between members.
FLOW_KINDS = ("topup", "redemption", "payment", "collection")
PAYMENTS = ("payment", "collection")


def _sums() -> list[Any]:
    """Units outstanding, euros backing them, and paper units in circulation, per row."""

    def part(kinds: tuple[str, ...], name: str) -> Any:
        return func.coalesce(
            func.sum(case((accounts.c.kind.in_(kinds), postings.c.amount), else_=0)), 0
        ).label(name)

    return [part(OUTSTANDING, "units"), part(BACKING, "euros"), part(PAPER, "paper")]


def _joined() -> Any:
    return postings.join(transfers, transfers.c.id == postings.c.transfer_id).join(
        accounts, accounts.c.id == postings.c.account_id
    )


def standing_before(conn: Connection, moment_ms: int) -> tuple[int, int, int]:
    """(units outstanding, euros in backing accounts, paper units) just before `moment_ms`."""
    query = (
        select(*_sums())
        .select_from(_joined())
        .where(transfers.c.created_ms < moment_ms)
        .where(accounts.c.kind.in_(OUTSTANDING + BACKING))
    )
    row = conn.execute(query).one()
    return int(row.units), int(row.euros), int(row.paper)


def changes(conn: Connection, start_ms: int, end_ms: int) -> Sequence[Any]:
    """Each transfer of [start, end) that changed the units outstanding, the backing euros or
    the paper units: (created_ms, units, euros, paper), in time order. A payment between
    members changes none of them and is left out by the database."""
    sums = _sums()
    query = (
        select(transfers.c.created_ms, *sums)
        .select_from(_joined())
        .where(transfers.c.created_ms >= start_ms, transfers.c.created_ms < end_ms)
        .where(accounts.c.kind.in_(OUTSTANDING + BACKING))
        .group_by(transfers.c.id, transfers.c.created_ms)
        .order_by(transfers.c.created_ms, transfers.c.id)
    )
    return [r for r in conn.execute(query) if r.units or r.euros or r.paper]


def flow_legs(conn: Connection, start_ms: int, end_ms: int) -> Sequence[Any]:
    """The legs of top-ups, redemptions and payments of [start, end) that tell their size and
    way: (transfer id, kind, created_ms, account code, account kind, amount)."""
    query = (
        select(
            transfers.c.id,
            transfers.c.kind,
            transfers.c.created_ms,
            accounts.c.code,
            accounts.c.kind.label("account_kind"),
            postings.c.amount,
        )
        .select_from(_joined())
        .where(transfers.c.created_ms >= start_ms, transfers.c.created_ms < end_ms)
        .where(transfers.c.kind.in_(FLOW_KINDS))
        .where(
            accounts.c.kind.in_(
                (Kind.MEMBER.value, Kind.CLEARING.value, Kind.OFFICE_CASH.value, Kind.RESERVE.value)
            )
        )
        .order_by(transfers.c.created_ms, transfers.c.id)
    )
    return list(conn.execute(query))


def received_by(
    conn: Connection, member_accounts: Sequence[str], start_ms: int, end_ms: int
) -> dict[str, int]:
    """Units these accounts received in payments of [start, end), by account code."""
    if not member_accounts:
        return {}
    query = (
        select(accounts.c.code, func.sum(postings.c.amount).label("received"))
        .select_from(_joined())
        .where(transfers.c.created_ms >= start_ms, transfers.c.created_ms < end_ms)
        .where(transfers.c.kind.in_(PAYMENTS))
        .where(and_(accounts.c.code.in_(list(member_accounts)), postings.c.amount > 0))
        .group_by(accounts.c.code)
    )
    return {row.code: int(row.received) for row in conn.execute(query)}


# -- the merchants' consents ----------------------------------------------------------------------


def record_consent(conn: Connection, member_id: str, listed: bool, now_ms: int) -> None:
    conn.execute(
        insert(report_consents).values(member_id=member_id, listed=listed, recorded_ms=now_ms)
    )


def consent_of(conn: Connection, member_id: str) -> Any | None:
    """The merchant's latest answer (listed, recorded_ms), or None if they never gave one."""
    query = (
        select(report_consents.c.listed, report_consents.c.recorded_ms)
        .where(report_consents.c.member_id == member_id)
        .order_by(report_consents.c.id.desc())
        .limit(1)
    )
    return conn.execute(query).first()


def listed_members(conn: Connection) -> list[str]:
    """The members whose latest answer is a consent to be listed."""
    latest = (
        select(func.max(report_consents.c.id)).group_by(report_consents.c.member_id)
    ).scalar_subquery()
    query = (
        select(report_consents.c.member_id)
        .where(report_consents.c.id.in_(latest))
        .where(report_consents.c.listed.is_(True))
    )
    return [row.member_id for row in conn.execute(query)]
