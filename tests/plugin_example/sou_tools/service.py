"""The tool library's rules. Money moves only through the ledger's escrow operations: the
member's signed escrow payment in, and out again signed with the plugin's own key."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from ledger.operations import plugin_escrow
from ledger.posting import Posted
from ledger.signing import SignedOrder
from members.access import Member
from runtime.node import Node
from runtime.reactions import LedgerEvent, TransferPosted
from runtime.signing import post, posted_or_existing, sign_as
from sou_tools import errors
from sou_tools.models import tool_loans
from sou_tools.settings import ToolSettings
from web.i18n import translations
from web.refusals import Money

NAME = "tools"
KEY = f"plugin:{NAME}"
DAY_MS = 86_400_000
LOAN_ESCROW = re.compile(rf"escrow:{NAME}:loan-([0-9]{{1,18}})")
# How a member's wallet names a loan's escrow (a msgid: French in tools.po).
ESCROW_NAME = "Tool library · {tool}"
STATES = {
    "waiting_deposit": "waiting for the deposit",
    "out": "borrowed",
    "returned": "returned",
    "lost": "lost",
}


def settings(node: Node) -> ToolSettings:
    found = node.plugin_settings(NAME)
    assert isinstance(found, ToolSettings)
    return found


def escrow(loan_id: int) -> str:
    return plugin_escrow(NAME, f"loan-{loan_id}")


def escrow_names(conn: Connection, codes: Sequence[str], lang: str) -> dict[str, str]:
    """The loans' escrows among `codes`, each named by the tool its deposit is for."""
    wanted = {int(found[1]): code for code in codes if (found := LOAN_ESCROW.fullmatch(code))}
    if not wanted:
        return {}
    query = select(tool_loans.c.id, tool_loans.c.tool).where(tool_loans.c.id.in_(sorted(wanted)))
    said = translations(lang).gettext(ESCROW_NAME)
    return {wanted[loan]: said.format(tool=tool) for loan, tool in conn.execute(query)}


def lend(node: Node, member: Member, tool: str, deposit: int) -> dict[str, Any]:
    """A loan waiting for its deposit, and the escrow account the deposit goes to."""
    if not 0 < deposit <= settings(node).max_deposit:
        raise errors.BAD_DEPOSIT(most=Money(settings(node).max_deposit, node.ledger.chart.local))
    row = {
        "member": member.id,
        "tool": tool,
        "deposit": deposit,
        "state": "waiting_deposit",
        "created_ms": int(time.time() * 1000),
    }
    with node.engine.begin() as conn:
        loan_id = conn.execute(tool_loans.insert().returning(tool_loans.c.id), row).scalar_one()
        node.ledger.open_account(escrow(loan_id), conn)  # with the loan, or not at all
    return {**row, "id": loan_id, "escrow": escrow(loan_id)}


def loans_of(node: Node, member: Member) -> list[dict[str, Any]]:
    with node.ledger.reading() as conn:
        rows = conn.execute(
            select(tool_loans).where(tool_loans.c.member == member.id).order_by(tool_loans.c.id)
        ).mappings()
        return [dict(r) for r in rows]


def _loan(node: Node, loan_id: int) -> dict[str, Any]:
    with node.ledger.reading() as conn:
        row = conn.execute(select(tool_loans).where(tool_loans.c.id == loan_id)).mappings().first()
    if row is None:
        raise errors.UNKNOWN_LOAN()
    return dict(row)


def pay_deposit(node: Node, member: Member, loan_id: int, envelope: SignedOrder) -> Posted:
    """Post the member's signed escrow payment of the loan's deposit. The loan turns `out`
    when the payment reaches the log (`on_ledger_event`), whoever posted it."""
    loan = _loan(node, loan_id)
    if loan["member"] != member.id:
        raise errors.UNKNOWN_LOAN()
    order = envelope.order
    wanted = {
        "kind": "escrow_payment",
        "from": member.account,
        "to": escrow(loan_id),
        "amount": loan["deposit"],
    }
    if any(order.get(k) != v for k, v in wanted.items()):
        raise errors.NOT_THE_DEPOSIT(
            deposit=Money(loan["deposit"], node.ledger.chart.local),
        )
    return post(node, envelope)


def on_ledger_event(node: Node, event: LedgerEvent) -> None:
    """A deposit reached the log: the tool is out. Idempotent (delivered at least once)."""
    if not isinstance(event, TransferPosted) or event.kind != "escrow_payment":
        return
    target = str(event.order.get("to", ""))
    if not target.startswith(f"escrow:{NAME}:loan-"):
        return
    loan_id = int(target.rsplit("-", 1)[1])
    with node.engine.begin() as conn:
        conn.execute(
            update(tool_loans)
            .where(tool_loans.c.id == loan_id, tool_loans.c.state == "waiting_deposit")
            .values(state="out", deposit_transfer=event.transfer_id)
        )


def give_back(node: Node, loan_id: int) -> Posted | None:
    """The tool is back: the deposit goes back to the member."""
    loan = _out(node, loan_id)
    return _settle(
        node, loan, "escrow_refund", f"member:{loan['member']}", "tool_returned", "returned"
    )


def declare_lost(node: Node, loan_id: int) -> Posted | None:
    """The tool is lost: the deposit goes to the library's keeper."""
    keeper = settings(node).keeper
    if not keeper:
        raise errors.NO_KEEPER()
    loan = _out(node, loan_id)
    return _settle(node, loan, "escrow_release", f"member:{keeper}", "tool_lost", "lost")


def _out(node: Node, loan_id: int) -> dict[str, Any]:
    loan = _loan(node, loan_id)
    if loan["state"] != "out":
        raise errors.LOAN_NOT_OUT(state=STATES[loan["state"]])
    return loan


def _settle(
    node: Node, loan: dict[str, Any], kind: str, to: str, rule: str, state: str
) -> Posted | None:
    # One client id per loan: the same request twice, or from two processes, moves the
    # deposit once.
    signed = sign_as(
        node,
        KEY,
        kind,
        f"tools-loan-{loan['id']}-settled",
        rule=rule,
        ref=loan["deposit_transfer"],
        to=to,
        amount=loan["deposit"],
        currency=node.ledger.chart.local,
        **{"from": escrow(loan["id"])},
    )
    posted = posted_or_existing(node, KEY, signed)
    with node.engine.begin() as conn:
        conn.execute(
            update(tool_loans)
            .where(tool_loans.c.id == loan["id"], tool_loans.c.state == "out")
            .values(state=state)
        )
    return posted


def remind_overdue(node: Node, now_ms: int) -> str:
    """Count a reminder on each loan out for longer than the overdue delay."""
    limit = now_ms - settings(node).overdue_days * DAY_MS
    with node.engine.begin() as conn:
        count = conn.execute(
            update(tool_loans)
            .where(tool_loans.c.state == "out", tool_loans.c.created_ms < limit)
            .values(reminders=tool_loans.c.reminders + 1)
        ).rowcount
    return f"{count} overdue loans reminded"
