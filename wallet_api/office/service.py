"""The exchange office's rules: cash received for a member (a top-up signed by the office's
role key), the till's cash deposited to the bank, and the treasurer's reconciliation.

Every write carries a client-chosen request id. The ledger keeps orders idempotent on
(signer, client id), but an operator's retry is signed anew (new nonce), so a repeat is
recognised here: same request id and same facts -> the first transfer; other facts -> 409.
Rows of our own tables are written in short transactions after the ledger post; a row
missing after a crash in between is rebuilt from the ledger (`record_missing_deposits`).

A deposit is reconciled when the treasurer marked it found on the bank statement (our row)
or when a line of an imported statement was matched to it (the reconciliation's record,
asked through the `sou_bank_confirmations` hook, never copied here): each fact is kept once,
by the feature that makes it, and undoing a match makes the deposit open again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ledger import repository as ledger_repo
from ledger.chart import office_cash
from ledger.errors import LedgerError
from ledger.operations import deposit_memo, read_deposit_memo
from ledger.repository import StoredTransfer
from members import repository as members_repo
from members.access import Member, now_ms
from members.errors import (
    AMOUNT_TOO_LARGE,
    BAD_AMOUNT,
    BAD_REQUEST_ID,
    BANK_REF_MISSING,
    FORBIDDEN,
    IDEMPOTENCY_CONFLICT,
    MEMBERSHIP_LAPSED,
    UNKNOWN_MEMBER,
)
from members.models import WALLET_ROLES
from members.shops import names_of
from runtime.hookspecs import BankConfirmation
from runtime.signing import posted_or_existing, sign_as
from wallet_api.office import repository as repo
from wallet_api.office.errors import (
    ALREADY_RECONCILED,
    BAD_SLIP_REF,
    MEMBER_MISSING,
    NOT_A_WALLET,
    TILL_SHORT,
    UNKNOWN_DEPOSIT,
)
from web.refusals import Money

if TYPE_CHECKING:
    from runtime.node import Node

RECENT = 20
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$")
SLIP_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _./#-]{0,63}$")
# What the signed orders say, in the ledger's own words (the member sees the cash-in memo).
CASH_IN_MEMO = "cash received at {office} by operator {operator}"


def office_role(office: str) -> str:
    """The role whose key signs an office's orders (in the node's key directory)."""
    return f"role:office:{office}"


def _office_of(operator: Member) -> str:
    if operator.role != "office" or not operator.office:
        raise FORBIDDEN()
    return operator.office


def _check_amount(node: Node, amount: int) -> None:
    if amount <= 0:
        raise BAD_AMOUNT()
    if amount > node.settings.max_amount:
        raise AMOUNT_TOO_LARGE(maximum=Money(node.settings.max_amount))


def _check_request_id(request_id: str) -> None:
    if not REQUEST_ID.match(request_id):
        raise BAD_REQUEST_ID()


def _earlier(node: Node, owner: str, client_id: str) -> StoredTransfer | None:
    with node.ledger.reading() as conn:
        return ledger_repo.transfers_by_client_id(conn, {(owner, client_id)}).get(
            (owner, client_id)
        )


# -- cash in -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CashIn:
    transfer_id: int
    office: str
    member: str
    amount: int
    memo: str | None
    created_ms: int
    replayed: bool = False


def find_wallet_member(node: Node, reference: str) -> Member:
    """A resident or merchant, by member id or by email address."""
    reference = reference.strip()
    if not reference or len(reference) > 254 or not reference.isprintable():
        raise MEMBER_MISSING()
    with node.ledger.reading() as conn:
        if "@" in reference:
            row = members_repo.member_by_email(conn, reference)
        else:
            row = members_repo.member(conn, reference.removeprefix("member:"))
    if row is None:
        raise UNKNOWN_MEMBER()
    member = Member.from_row(row)
    if member.role not in WALLET_ROLES:
        raise NOT_A_WALLET()
    return member


def cash_in(node: Node, operator: Member, request_id: str, member_ref: str, amount: int) -> CashIn:
    """Credit a member with the cash the office received: a top-up from the office's till,
    signed by the office's role key, the operator named in its memo."""
    office = _office_of(operator)
    _check_request_id(request_id)
    _check_amount(node, amount)
    member = find_wallet_member(node, member_ref)
    owner, client_id = office_role(office), f"cash-in:{request_id}"
    earlier = _earlier(node, owner, client_id)
    if earlier is not None:
        return _same_cash_in(earlier, office, member, amount)
    settings = node.settings
    if settings.membership_required and not member.membership_current():
        raise MEMBERSHIP_LAPSED()
    signed = sign_as(
        node,
        owner,
        "topup",
        client_id,
        to=member.account,
        amount=amount,
        currency=node.ledger.chart.local,
        source=f"office:{office}",
        memo=CASH_IN_MEMO.format(office=office, operator=operator.id),
    )
    posted = posted_or_existing(node, owner, signed)
    if posted is None:  # the same request, sent twice at once: the first one stands
        earlier = _earlier(node, owner, client_id)
        assert earlier is not None
        return _same_cash_in(earlier, office, member, amount)
    return CashIn(
        posted.transfer_id, office, member.id, amount, signed.order["memo"], posted.created_ms
    )


def _same_cash_in(earlier: StoredTransfer, office: str, member: Member, amount: int) -> CashIn:
    fields = earlier.fields
    if earlier.kind != "topup" or fields.get("to") != member.account or fields["amount"] != amount:
        raise IDEMPOTENCY_CONFLICT()
    return CashIn(
        earlier.id, office, member.id, amount, fields.get("memo"), earlier.created_ms, True
    )


# -- deposits to the bank ------------------------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    """The line of an imported bank statement the reconciliation matched a deposit to."""

    line_id: int | None
    booked: str | None  # the day the bank booked it (ISO date)
    reference: str | None  # the bank's own reference of the line, if it gives one
    matched_ms: int
    matched_by: str | None  # None: matched automatically
    account: str | None  # the statement's account (reserve:digital)


@dataclass(frozen=True)
class Deposit:
    transfer_id: int
    office: str
    amount: int
    slip_ref: str | None
    recorded_by: str | None
    created_ms: int
    # Marked found on the statement by the treasurer, by hand (our own record).
    bank_ref: str | None = None
    reconciled_by: str | None = None
    reconciled_ms: int | None = None
    # Matched to a line of an imported statement (the reconciliation's record).
    statement_line: StatementLine | None = None
    replayed: bool = False

    @property
    def reconciled(self) -> bool:
        """Found on the bank statement: by hand, or by the reconciliation of a statement."""
        return self.reconciled_ms is not None or self.statement_line is not None


def deposit(node: Node, operator: Member, request_id: str, amount: int, slip_ref: str) -> Deposit:
    """The office took cash from its till to the bank: a `cash_deposit` to the reserve,
    signed by the office's role key. The ledger refuses more than the till holds."""
    office = _office_of(operator)
    _check_request_id(request_id)
    _check_amount(node, amount)
    slip_ref = slip_ref.strip()
    if not SLIP_REF.match(slip_ref):
        raise BAD_SLIP_REF()
    owner, client_id = office_role(office), f"deposit:{request_id}"
    earlier = _earlier(node, owner, client_id)
    if earlier is None:
        signed = sign_as(
            node,
            owner,
            "cash_deposit",
            client_id,
            office=office,
            amount=amount,
            to="reserve:digital",
            memo=deposit_memo(slip_ref, operator.id),
        )
        try:
            posted = posted_or_existing(node, owner, signed)
        except LedgerError as exc:
            raise _till_short(exc, office) from None
        earlier = _earlier(node, owner, client_id)
        assert earlier is not None
        replayed = posted is None
    else:
        replayed = True
    if earlier.kind != "cash_deposit" or earlier.fields["amount"] != amount:
        raise IDEMPOTENCY_CONFLICT()
    found = _record_deposit(node, earlier.id, earlier.order_json, earlier.created_ms)
    if found.slip_ref != slip_ref:
        raise IDEMPOTENCY_CONFLICT()
    return Deposit(**{**vars(found), "replayed": replayed})


def _till_short(exc: LedgerError, office: str) -> Exception:
    if exc.code == "insufficient_funds" and exc.params.get("account") == office_cash(office):
        return TILL_SHORT(available=Money(int(exc.params.get("available", 0))))
    return exc


def _record_deposit(node: Node, transfer_id: int, order_json: str, created_ms: int) -> Deposit:
    """The deposit's row, written once (a concurrent writer's row is as good)."""
    found = find_deposit(node, transfer_id)
    if found is not None:
        return found
    fields = json.loads(order_json)
    slip, recorder = read_deposit_memo(fields.get("memo")) or (None, None)
    try:
        with node.engine.begin() as conn:
            if recorder is not None and members_repo.member(conn, recorder) is None:
                recorder = None  # signed outside this API: nobody of ours recorded it
            repo.insert_deposit(
                conn,
                {
                    "transfer_id": transfer_id,
                    "office": fields["office"],
                    "slip_ref": slip,
                    "recorded_by": recorder,
                    "created_ms": created_ms,
                },
            )
    except IntegrityError:
        pass  # written meanwhile by a repeat of the same request
    found = find_deposit(node, transfer_id)
    assert found is not None
    return found


def _deposit_of(row: Any, matched: dict[int, StatementLine] | None = None) -> Deposit:
    return Deposit(
        row["transfer_id"],
        row["office"],
        int(json.loads(row["order_json"])["amount"]),
        row["slip_ref"],
        row["recorded_by"],
        row["created_ms"],
        row["bank_ref"],
        row["reconciled_by"],
        row["reconciled_ms"],
        (matched or {}).get(int(row["transfer_id"])),
    )


def _deposits_of(node: Node, conn: Connection, rows: Sequence[Any]) -> list[Deposit]:
    """Deposits with the statement lines matched to them."""
    matched = statement_lines(node, conn, (int(r["transfer_id"]) for r in rows))
    return [_deposit_of(r, matched) for r in rows]


def statement_lines(
    node: Node, conn: Connection, transfer_ids: Iterable[int]
) -> dict[int, StatementLine]:
    """The statement lines other features (the reconciliation) say were matched to these
    deposits, read on `conn`: the first one each, if several."""
    wanted = sorted(set(transfer_ids))
    if not wanted:
        return {}
    found: dict[int, StatementLine] = {}
    said = node.plugins.each("sou_bank_confirmations", conn=conn, transfer_ids=wanted)
    for _plugin, confirmations in said:
        for c in sorted(confirmations, key=lambda c: (c.at_ms, c.line_id or 0)):
            if c.how == "statement" and c.transfer_id in wanted:
                line = StatementLine(c.line_id, c.booked, c.bank_ref, c.at_ms, c.by, c.account)
                found.setdefault(c.transfer_id, line)
    return found


def reconciled_by_hand(conn: Connection, transfer_ids: Sequence[int]) -> list[BankConfirmation]:
    """The deposits among these the treasurer marked found on the statement by hand, as
    the `sou_bank_confirmations` hook says them to the other features."""
    return [
        BankConfirmation(
            int(r["transfer_id"]),
            "hand",
            r["bank_ref"],
            int(r["reconciled_ms"]),
            r["reconciled_by"],
        )
        for r in repo.reconciled_by_hand(conn, transfer_ids)
    ]


def find_deposit(node: Node, transfer_id: int) -> Deposit | None:
    """A cash deposit by its transfer id (None if there is none)."""
    with node.ledger.reading() as conn:
        found = repo.deposit(conn, transfer_id)
        return None if found is None else _deposits_of(node, conn, [found])[0]


def record_missing_deposits(node: Node) -> int:
    """Write the rows of cash deposits posted without one (the node stopped in between, or
    the deposit was signed outside this API); how many were missing."""
    with node.ledger.reading() as conn:
        missing = repo.unrecorded_deposits(conn)
    for transfer in missing:
        _record_deposit(node, transfer["id"], transfer["order_json"], transfer["created_ms"])
    return len(missing)


# -- what the office and the treasurer see --------------------------------------------------


@dataclass(frozen=True)
class OfficeView:
    office: str
    till: int
    cash_ins: list[CashIn]
    deposits: list[Deposit]
    names: dict[str, str] = field(default_factory=dict)  # the cash-ins' members, as named


def office_view(node: Node, operator: Member) -> OfficeView:
    """The operator's office: its till and its recent cash-ins and deposits."""
    office = _office_of(operator)
    record_missing_deposits(node)
    till = office_cash(office)
    with node.ledger.reading() as conn:
        balance = ledger_repo.balances(conn, [till]).get(till, 0)
        moves = repo.till_movements(conn, till, "topup", limit=RECENT)
        deposits = _deposits_of(node, conn, repo.deposits(conn, office=office, limit=RECENT))
        cash_ins = [_cash_in_of(office, m) for m in moves]
        names = names_of(conn, {c.member for c in cash_ins})
    return OfficeView(office, balance, cash_ins, deposits, names)


def _cash_in_of(office: str, row: Any) -> CashIn:
    order = json.loads(row["order_json"])
    return CashIn(
        row["id"],
        office,
        str(order["to"]).removeprefix("member:"),
        int(row["amount"]),
        order.get("memo"),
        row["created_ms"],
    )


@dataclass(frozen=True)
class OfficeSummary:
    office: str
    till: int
    cash_ins_total: int
    cash_ins_count: int
    deposits_total: int
    deposits_count: int
    unreconciled: list[Deposit]  # every deposit still to find on the statement
    recent: list[Deposit]  # the latest deposits, reconciled or not

    @property
    def unreconciled_total(self) -> int:
        return sum(d.amount for d in self.unreconciled)


def offices(node: Node) -> list[OfficeSummary]:
    """For the treasurer: every office's till, what it took in, what it deposited, and
    the deposits still to find on the bank statement."""
    record_missing_deposits(node)
    summaries = []
    with node.ledger.reading() as conn:
        for till in repo.tills(conn):
            office = till["code"].removeprefix("office:").removesuffix(":cash")
            totals = repo.till_totals(conn, till["code"])
            cash_ins, cash_in_count = totals.get("topup", (0, 0))
            deposited, deposit_count = totals.get("cash_deposit", (0, 0))
            # Not marked by hand, and not matched to a statement line either.
            open_rows = repo.unreconciled(conn, office)
            recent_rows = repo.deposits(conn, office=office, limit=RECENT)
            matched = statement_lines(
                node, conn, (int(r["transfer_id"]) for r in [*open_rows, *recent_rows])
            )
            pending = [d for d in (_deposit_of(r, matched) for r in open_rows) if not d.reconciled]
            summaries.append(
                OfficeSummary(
                    office,
                    int(till["balance"]),
                    cash_ins,
                    cash_in_count,
                    -deposited,
                    deposit_count,
                    pending,
                    [_deposit_of(r, matched) for r in recent_rows],
                )
            )
    return summaries


def reconcile(node: Node, treasurer: Member, transfer_id: int, bank_ref: str) -> Deposit:
    """The treasurer found the deposit on the bank statement: recorded once, and not for a
    deposit a statement's line was already matched to (it is reconciled)."""
    bank_ref = " ".join(bank_ref.split())
    if not bank_ref or len(bank_ref) > 128 or not bank_ref.isprintable():
        raise BANK_REF_MISSING()
    record_missing_deposits(node)
    with node.engine.begin() as conn:
        found = repo.deposit(conn, transfer_id)
        if found is None:
            raise UNKNOWN_DEPOSIT()
        if statement_lines(node, conn, [transfer_id]) or not repo.reconcile(
            conn, transfer_id, bank_ref=bank_ref, by=treasurer.id, at_ms=now_ms()
        ):
            raise ALREADY_RECONCILED()
        found = repo.deposit(conn, transfer_id)
    assert found is not None
    return _deposit_of(found)
