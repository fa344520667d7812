"""The audit of the paper notes: what their transfers say each note account must hold, and
whether the euros of the notes sold are still there to back them.

Each state of a note has its account (the printed stock, each office's stock, circulation),
and only the notes' operations move units in and out of them. So, from the transfers alone:

- printed − sent to offices − voided in stock = `notes:stock`;
- sent to an office − sold there − voided there = `notes:office:<id>`;
- sold − deposited − voided in circulation = `notes:circulation`;

and the notes in circulation are backed by the paper reserve (`reserve:paper`) and by the
cash of notes sold still in the offices' tills: what their sales brought less what each
office took to the paper reserve (never more than the till holds). Each note leaves each
state once: two transfers with one note's one-time token are a finding too (the database's
unique key says so, but an audit does not take the schema's word for it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, select

from audits.report import Report, finding, finding_template, later
from ledger.chart import EUR, Kind, kind_of
from ledger.models import accounts, postings, transfers

NOTE_KINDS = ("note_print", "note_dispatch", "note_sale", "note_deposit", "note_void")
CHECK = "paper"


@dataclass
class Paper:
    """What the notes' transfers add up to: per (transfer kind, account code), and per till
    the euros its cash deposits took to the paper reserve. A resumed audit adds the
    transfers after the last one checked to what the previous audit left."""

    flows: dict[tuple[str, str], int] = field(default_factory=dict)
    taken: dict[str, int] = field(default_factory=dict)

    def to_state(self) -> dict[str, dict[str, int]]:
        flows = {f"{kind}|{code}": amount for (kind, code), amount in self.flows.items()}
        return {"flows": flows, "taken": dict(self.taken)}

    @classmethod
    def from_state(cls, state: dict[str, dict[str, int]]) -> Paper:
        flows = {}
        for key, amount in state["flows"].items():
            kind, code = key.split("|", 1)
            flows[(kind, code)] = amount
        return cls(flows, dict(state["taken"]))


def check_paper(
    conn: Connection,
    local: str,
    report: Report,
    since: Paper | None = None,
    after: int | None = None,
) -> Paper:
    """Add a finding for each way the notes' accounts disagree with their transfers, for
    notes in circulation the euros do not cover, and for a note moved twice from a state.
    `since`: what the transfers up to `after` added up to (a previous audit's); returns the
    totals up to the last transfer, for the next."""
    if since is None:
        after = None
    paper = Paper(_flows(conn, after), _taken_to_paper_reserve(conn, after))
    if since is not None:
        for key, amount in since.flows.items():
            paper.flows[key] = paper.flows.get(key, 0) + amount
        for code, amount in since.taken.items():
            paper.taken[code] = paper.taken.get(code, 0) + amount
    flows = paper.flows
    balances = _balances(conn)
    _check_stock(flows, balances, local, report)
    for code in sorted(c for c in balances.keys() | _codes(flows) if _is_office_stock(c)):
        _check_office(code, flows, balances, local, report)
    circulation = _check_circulation(flows, balances, local, report)
    _check_cover(paper, balances, circulation, local, report)
    _check_once(conn, report, after)
    return paper


def _flows(conn: Connection, after: int | None) -> dict[tuple[str, str], int]:
    """(transfer kind, account code) -> sum of the postings of the notes' transfers after
    transfer `after` (None: all)."""
    t, p, a = transfers, postings, accounts
    query = (
        select(t.c.kind, a.c.code, func.sum(p.c.amount))
        .join(p, p.c.transfer_id == t.c.id)
        .join(a, a.c.id == p.c.account_id)
        .where(t.c.kind.in_(NOTE_KINDS), later(t.c.id, after))
        .group_by(t.c.kind, a.c.code)
    )
    return {(kind, code): int(total) for kind, code, total in conn.execute(query)}


def _balances(conn: Connection) -> dict[str, int]:
    """Stored balances of the notes' accounts, the paper reserve and the tills."""
    query = select(accounts.c.code, accounts.c.balance).where(
        accounts.c.kind.in_(
            (
                Kind.NOTES_STOCK.value,
                Kind.NOTES_OFFICE.value,
                Kind.NOTES_CIRCULATION.value,
                Kind.OFFICE_CASH.value,
                Kind.RESERVE.value,
            )
        )
    )
    return {code: int(balance) for code, balance in conn.execute(query)}


def _codes(flows: dict[tuple[str, str], int]) -> set[str]:
    return {code for _, code in flows}


def _is_office_stock(code: str) -> bool:
    try:
        return kind_of(code) is Kind.NOTES_OFFICE
    except Exception:  # an account outside the chart: the accounts' check reports it
        return False


def _compare(
    code: str,
    said: int,
    how: str,
    given: dict[str, Any],
    balances: dict[str, int],
    local: str,
    report: Report,
) -> None:
    """`how`: the template of the flows that give `said`, ending "give {said} {local} cents,
    but {code} holds {held}"."""
    held = balances.get(code, 0)
    if said != held:
        args: dict[str, Any] = {"said": said, "local": local, "code": code, "held": held}
        report.findings.append(finding(CHECK, how, account=code, **given, **args))


def _check_stock(
    flows: dict[tuple[str, str], int], balances: dict[str, int], local: str, report: Report
) -> None:
    printed = flows.get(("note_print", "notes:stock"), 0)
    sent = -flows.get(("note_dispatch", "notes:stock"), 0)
    voided = -flows.get(("note_void", "notes:stock"), 0)
    how = finding_template(
        "notes printed ({printed}) less sent to offices ({sent}) less voided in stock "
        "({voided}) give {said} {local} cents, but {code} holds {held}"
    )
    given: dict[str, Any] = {"printed": printed, "sent": sent, "voided": voided}
    _compare("notes:stock", printed - sent - voided, how, given, balances, local, report)


def _check_office(
    code: str,
    flows: dict[tuple[str, str], int],
    balances: dict[str, int],
    local: str,
    report: Report,
) -> None:
    received = flows.get(("note_dispatch", code), 0)
    sold = -flows.get(("note_sale", code), 0)
    voided = -flows.get(("note_void", code), 0)
    how = finding_template(
        "notes sent to {code} ({received}) less sold ({sold}) less voided there ({voided}) "
        "give {said} {local} cents, but {code} holds {held}"
    )
    given: dict[str, Any] = {"received": received, "sold": sold, "voided": voided}
    _compare(code, received - sold - voided, how, given, balances, local, report)


def _check_circulation(
    flows: dict[tuple[str, str], int], balances: dict[str, int], local: str, report: Report
) -> int:
    sold = flows.get(("note_sale", "notes:circulation"), 0)
    deposited = -flows.get(("note_deposit", "notes:circulation"), 0)
    voided = -flows.get(("note_void", "notes:circulation"), 0)
    how = finding_template(
        "notes sold ({sold}) less deposited ({deposited}) less voided in circulation "
        "({voided}) give {said} {local} cents, but {code} holds {held}"
    )
    given: dict[str, Any] = {"sold": sold, "deposited": deposited, "voided": voided}
    _compare("notes:circulation", sold - deposited - voided, how, given, balances, local, report)
    return balances.get("notes:circulation", 0)


def _check_cover(
    paper: Paper, balances: dict[str, int], circulation: int, local: str, report: Report
) -> None:
    """The paper reserve, and the notes' cash still in the tills, cover the circulation."""
    taken = paper.taken
    in_tills = 0
    for code, brought in paper.flows.items():
        kind, till = code
        if kind != "note_sale" or not till.endswith(":cash"):
            continue
        left = max(0, brought - taken.get(till, 0))
        in_tills += min(left, max(0, balances.get(till, 0)))
    reserve = balances.get("reserve:paper", 0)
    if reserve + in_tills < circulation:
        report.findings.append(
            finding(
                CHECK,
                "{circulation} {local} cents of notes in circulation, but only {reserve} {eur} "
                "cents in reserve:paper and {in_tills} from notes sold in the tills",
                account="reserve:paper",
                circulation=circulation,
                local=local,
                reserve=reserve,
                eur=EUR,
                in_tills=in_tills,
            )
        )


def _taken_to_paper_reserve(conn: Connection, after: int | None) -> dict[str, int]:
    """Per till: the euros its cash deposits after transfer `after` took to the paper
    reserve."""
    t, p, a = transfers, postings, accounts
    to_reserve = postings.alias("to_reserve")
    reserve = select(a.c.id).where(a.c.code == "reserve:paper").scalar_subquery()
    query = (
        select(a.c.code, func.sum(p.c.amount))
        .join(p, p.c.transfer_id == t.c.id)
        .join(a, a.c.id == p.c.account_id)
        .join(
            to_reserve,
            and_(to_reserve.c.transfer_id == t.c.id, to_reserve.c.account_id == reserve),
        )
        .where(t.c.kind == "cash_deposit", a.c.kind == Kind.OFFICE_CASH.value, later(t.c.id, after))
        .group_by(a.c.code)
    )
    taken: dict[str, int] = defaultdict(int)
    for code, total in conn.execute(query):
        taken[code] -= int(total)
    return dict(taken)


def _check_once(conn: Connection, report: Report, after: int | None) -> None:
    """No note leaves a state twice: each one-time token of the notes is used once. Resumed
    after transfer `after`, only the tokens of later transfers are looked at."""
    t = transfers
    twice = (
        select(t.c.once_key)
        .where(t.c.kind.in_(NOTE_KINDS), t.c.once_key.is_not(None))
        .group_by(t.c.once_key)
        .having(func.count() > 1)
    )
    if after is not None:
        recent = select(t.c.once_key).where(t.c.id > after, t.c.kind.in_(NOTE_KINDS))
        twice = twice.where(t.c.once_key.in_(recent))
    query = select(t.c.id, t.c.once_key).where(t.c.once_key.in_(twice)).order_by(t.c.id)
    first: dict[str, int] = {}
    for transfer_id, token in conn.execute(query):
        if token in first:
            report.findings.append(
                finding(
                    CHECK,
                    "transfer {transfer} moves {token} again, as transfer {first} did",
                    transfer=transfer_id,
                    token=token,
                    first=first[token],
                    transfer_id=transfer_id,
                )
            )
        else:
            first[token] = transfer_id
