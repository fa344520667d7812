"""The treasurer and card shortfalls: units a member had already spent when Stripe took a
card payment back (a refund, a dispute lost). The member's wallet is frozen meanwhile.

The treasurer settles a shortfall in one of two ways:
- **take back** the member's later units: a `card_reversal` of what the wallet now holds, at
  most what is owed (the ledger caps the reversals of a top-up at its amount);
- **write it off**: the association bears the loss. The euros left Stripe's balance with the
  refund; the units stayed in circulation. So that every unit stays backed, the association
  puts as many euros of its own into the reserve: one `card_write_off` signed with the
  treasurer's key, referring to the card top-up, moves them into `reserve:digital` and takes
  out of `clearing:stripe` the euros Stripe no longer holds (a bank top-up of the member and
  a card reversal of the same units, in one transfer). The member's balance does not move;
  the reserve covers every unit.

When nothing is owed any more the wallet thaws. A frozen wallet may also be unfrozen by
hand, but only when its member owes nothing for card payments. What a dispute still open
left owed waits for Stripe's decision (won, it is forgiven).

A settlement's row is written before its orders are posted, and completed after, under the
lock the webhooks take; the orders are posted in this thread and carry client ids derived
from the row. A row left unfinished (the node stopped in between) is finished, or dropped if
nothing was posted, before the next settlement or view (`_finish_pending`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger import repository as ledger_repo
from ledger.chart import member_account
from ledger.errors import LedgerError
from ledger.operations import NODE, TREASURER
from members import repository as members_repo
from members.access import Member, now_ms
from members.errors import BAD_REQUEST_ID, IDEMPOTENCY_CONFLICT, REASON_MISSING, UNKNOWN_MEMBER
from members.models import WALLET_ROLES
from members.service import freezing
from wallet_api.cards import repository as repo
from wallet_api.cards.errors import (
    CLEARING_SHORT,
    DISPUTE_OPEN,
    NOT_FROZEN,
    NOTHING_OWED,
    NOTHING_TO_TAKE_BACK,
    STILL_OWED,
    UNKNOWN_CARD_PAYMENT,
)
from wallet_api.cards.service import change, client_id, one_at_a_time, order, take
from web.refusals import Money, refusal_of

if TYPE_CHECKING:
    from sqlalchemy import Connection, RowMapping

    from runtime.node import Node

log = logging.getLogger(__name__)

TAKE_BACK_RULE = "treasurer.card_shortfall.take_back"
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$")
MAX_REASON = 200
RECENT = 50


@dataclass(frozen=True)
class Shortfall:
    payment_intent: str
    member_id: str
    member_name: str
    topup_transfer_id: int
    amount: int  # the card top-up
    shortfall: int  # units owed
    settleable: int  # of which disputes still open may not forgive any more
    since_ms: int | None
    wallet_balance: int  # what taking back could take now
    frozen: bool


@dataclass(frozen=True)
class FrozenWallet:
    member_id: str
    member_name: str
    reason: str
    owed: int


@dataclass(frozen=True)
class Settlement:
    id: int
    request_id: str
    action: str  # taken_back, written_off, unfrozen
    member_id: str
    member_name: str
    payment_intent: str | None
    amount: int
    reason: str | None
    treasurer_id: str
    treasurer_name: str
    created_ms: int
    reversal_id: int | None
    topup_id: int | None
    replayed: bool = False

    @classmethod
    def of(cls, row: RowMapping, replayed: bool = False) -> Settlement:
        return cls(
            **{name: row[name] for name in cls.__dataclass_fields__ if name != "replayed"},
            replayed=replayed,
        )


# -- what the treasurer sees -----------------------------------------------------------------


def shortfalls(node: Node) -> list[Shortfall]:
    """Every card payment that owes units, the oldest shortfall first."""
    with node.ledger.reading() as conn:
        unfinished = bool(repo.pending_settlements(conn))
    if unfinished:  # rare: the lock is taken only then (a webhook may hold it a while)
        with one_at_a_time(node):
            _finish_pending(node)
    with node.ledger.reading() as conn:
        rows = repo.shortfalls(conn)
        balances = _balances(conn, {row["member_id"] for row in rows})
    return [
        Shortfall(
            row["payment_intent"],
            row["member_id"],
            row["display_name"],
            row["topup_transfer_id"],
            row["amount"],
            row["shortfall"],
            row["shortfall"] - row["owed_open"],
            row["since_ms"],
            balances[row["member_id"]],
            row["frozen_reason"] is not None,
        )
        for row in rows
    ]


def _balances(conn: Connection, member_ids: set[str]) -> dict[str, int]:
    found = ledger_repo.balances(conn, [member_account(m) for m in member_ids])
    return {m: found.get(member_account(m), 0) for m in member_ids}


def frozen_wallets(node: Node) -> list[FrozenWallet]:
    """Members whose wallet is frozen, with what they owe for card payments."""
    with node.ledger.reading() as conn:
        rows = repo.frozen_members(conn)
    return [
        FrozenWallet(row["id"], row["display_name"], row["frozen_reason"], int(row["owed"]))
        for row in rows
    ]


def settlements(node: Node, limit: int = RECENT) -> list[Settlement]:
    """The treasurer's latest settlements, newest first: who, when, why, how much."""
    with node.ledger.reading() as conn:
        return [Settlement.of(row) for row in repo.recent_settlements(conn, limit)]


def find_settlement(node: Node, settlement_id: int) -> Settlement | None:
    with node.ledger.reading() as conn:
        row = repo.settlement(conn, settlement_id)
    return None if row is None or row["done_ms"] is None else Settlement.of(row)


# -- taking back, writing off, unfreezing ------------------------------------------------------


def take_back(node: Node, treasurer: Member, request_id: str, intent: str) -> Settlement:
    """Take back what the member's wallet now holds, up to what the card payment owes."""
    _check_request_id(request_id)
    with one_at_a_time(node):
        _finish_pending(node)
        earlier = _earlier(node, request_id, "taken_back", intent, None)
        if earlier is not None:
            return earlier
        row, settleable = _owed(node, intent)
        if node.ledger.balance(member_account(row["member_id"])) <= 0:
            raise NOTHING_TO_TAKE_BACK(name=_name(node, row["member_id"]))
        begun = _begin(node, request_id, "taken_back", row, treasurer, settleable, None)
        return _finish_take_back(node, begun)


def write_off(
    node: Node, treasurer: Member, request_id: str, intent: str, reason: str
) -> Settlement:
    """The association bears what the card payment owes (see the module's docstring)."""
    _check_request_id(request_id)
    reason = _check_reason(reason)
    with one_at_a_time(node):
        _finish_pending(node)
        earlier = _earlier(node, request_id, "written_off", intent, reason)
        if earlier is not None:
            return earlier
        row, settleable = _owed(node, intent)
        clearing = node.ledger.balance("clearing:stripe")
        if clearing < settleable:
            raise CLEARING_SHORT(available=Money(clearing), amount=Money(settleable))
        begun = _begin(node, request_id, "written_off", row, treasurer, settleable, reason)
        return _finish_write_off(node, begun)


def unfreeze(
    node: Node, treasurer: Member, request_id: str, member_id: str, reason: str
) -> Settlement:
    """Unfreeze a wallet by hand: only when its member owes nothing for card payments."""
    _check_request_id(request_id)
    reason = _check_reason(reason)
    with one_at_a_time(node):
        _finish_pending(node)
        earlier = _earlier(node, request_id, "unfrozen", None, reason, member_id)
        if earlier is not None:
            return earlier
        with node.ledger.reading() as conn:
            member = members_repo.member(conn, member_id)
            owed = repo.shortfall_of(conn, member_id)
        if member is None or member["role"] not in WALLET_ROLES:
            raise UNKNOWN_MEMBER()
        if member["frozen_reason"] is None:
            raise NOT_FROZEN()
        if owed:
            raise STILL_OWED(name=member["display_name"], owed=Money(owed, node.ledger.chart.local))
        row = _settlement_row(request_id, "unfrozen", member_id, None, treasurer, 0, reason)
        with freezing(node) as freezes:
            settlement_id = _insert(freezes.conn, {**row, "done_ms": row["created_ms"]})
            freezes.unfreeze(member_id)
    found = find_settlement(node, settlement_id)
    assert found is not None
    return found


# -- the steps -----------------------------------------------------------------------------------


def _owed(node: Node, intent: str) -> tuple[RowMapping, int]:
    """The card payment and what of its shortfall may be settled now."""
    with node.ledger.reading() as conn:
        row = repo.card_payment(conn, intent)
        open_owed = repo.owed_in_open_disputes(conn, intent) if row is not None else 0
    if row is None or row["topup_transfer_id"] is None:
        raise UNKNOWN_CARD_PAYMENT()
    if row["shortfall"] <= 0:
        raise NOTHING_OWED()
    if row["shortfall"] <= open_owed:
        raise DISPUTE_OPEN()
    return row, int(row["shortfall"] - open_owed)


def _begin(
    node: Node,
    request_id: str,
    action: str,
    row: RowMapping,
    treasurer: Member,
    amount: int,
    reason: str | None,
) -> RowMapping:
    """The settlement's row, written before anything is posted."""
    values = _settlement_row(
        request_id, action, row["member_id"], row["payment_intent"], treasurer, amount, reason
    )
    with node.engine.begin() as conn:
        settlement_id = _insert(conn, values)
        begun = repo.settlement(conn, settlement_id)
    assert begun is not None
    return begun


def _settlement_row(
    request_id: str,
    action: str,
    member_id: str,
    intent: str | None,
    treasurer: Member,
    amount: int,
    reason: str | None,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "action": action,
        "member_id": member_id,
        "payment_intent": intent,
        "amount": amount,
        "reason": reason,
        "treasurer_id": treasurer.id,
        "created_ms": now_ms(),
    }


def _insert(conn: Connection, values: dict[str, Any]) -> int:
    settlement_id = repo.insert_settlement(conn, values)
    if settlement_id is None:  # the same request id, from another process meanwhile
        raise IDEMPOTENCY_CONFLICT()
    return settlement_id


def _finish_take_back(node: Node, begun: RowMapping) -> Settlement:
    """Take the units (at most what is owed now), then record it: the shortfall shrinks."""
    row, settleable = _owed(node, begun["payment_intent"])
    reversal_id, taken = take(
        node,
        "card_reversal",
        _order_id("card-takeback", begun),
        TAKE_BACK_RULE,
        source=member_account(row["member_id"]),
        due=min(settleable, begun["amount"]),
        at_once=True,
        ref=row["topup_transfer_id"],
        memo=_memo("taken back", begun),
    )
    if reversal_id is None:
        _drop(node, begun)
        raise NOTHING_TO_TAKE_BACK(name=_name(node, row["member_id"]))
    return _done(node, begun, taken, reversal_id, None)


def _finish_write_off(node: Node, begun: RowMapping) -> Settlement:
    """The association's euros into the reserve and the card's out of clearing, in one
    `card_write_off` transfer: the member's balance does not move. Refused, it posted
    nothing and the settlement's row is dropped: nothing stays done."""
    with node.ledger.reading() as conn:
        row = repo.card_payment(conn, begun["payment_intent"])
    assert row is not None
    order_id = _order_id("card-writeoff", begun)
    try:
        write_off_id, cents = order(
            node,
            TREASURER,
            "card_write_off",
            order_id,
            at_once=True,
            amount=begun["amount"],
            currency=node.ledger.chart.local,
            ref=row["topup_transfer_id"],
            ext=order_id,  # the reference of the treasurer's bank transfer to the reserve
            memo=_memo("written off", begun),
        )
    except LedgerError as exc:
        _drop(node, begun)
        raise refusal_of(exc) from None
    # One transfer both brought the euros in (`topup_id`) and settled the card top-up.
    return _done(node, begun, cents, write_off_id, write_off_id)


def _done(
    node: Node, begun: RowMapping, cents: int, reversal_id: int, topup_id: int | None
) -> Settlement:
    """Record what was taken out: the shortfall shrinks (the wallet thaws at zero)."""
    done = {"amount": cents, "reversal_id": reversal_id, "topup_id": topup_id}

    def finish(conn: Connection) -> None:
        repo.finish_settlement(conn, begun["id"], done_ms=now_ms(), **done)

    change(node, begun["payment_intent"], reversed=cents, shortfall=-cents, also=finish)
    found = find_settlement(node, begun["id"])
    assert found is not None
    return found


def _drop(node: Node, begun: RowMapping) -> None:
    with node.engine.begin() as conn:
        repo.drop_settlement(conn, begun["id"])


def _finish_pending(node: Node) -> None:
    """Settlements whose row was written but not completed (the node stopped in between):
    completed from the transfer the ledger holds, or dropped if nothing was posted. Called
    with the lock held, so no settlement is under way."""
    with node.ledger.reading() as conn:
        pending = repo.pending_settlements(conn)
        posted = {
            row["id"]: repo.transfer_of(
                conn, _SIGNER[row["action"]], _order_id(_KIND[row["action"]], row)
            )
            for row in pending
        }
    for row in pending:
        transfer = posted[row["id"]]
        if transfer is None:
            _drop(node, row)
            continue
        cents = int(transfer.fields["amount"])
        _done(
            node,
            row,
            cents,
            transfer.id,
            transfer.id if transfer.kind == "card_write_off" else None,
        )


_KIND = {"taken_back": "card-takeback", "written_off": "card-writeoff", "unfrozen": "none"}
_SIGNER = {"taken_back": NODE, "written_off": TREASURER, "unfrozen": NODE}


def _order_id(kind: str, settlement: RowMapping) -> str:
    return client_id(kind, str(settlement["id"]))


def _memo(what: str, settlement: RowMapping) -> str:
    why = f": {settlement['reason']}" if settlement["reason"] else ""
    text = (
        f"card shortfall of {settlement['payment_intent']} {what} by treasurer "
        f"{settlement['treasurer_id']} (settlement {settlement['id']}){why}"
    )
    return text[:280]


def _earlier(
    node: Node,
    request_id: str,
    action: str,
    intent: str | None,
    reason: str | None,
    member_id: str | None = None,
) -> Settlement | None:
    """The settlement this request id already made (the same request sent again), or a
    conflict if it made another."""
    with node.ledger.reading() as conn:
        found = repo.settlement_by_request(conn, request_id)
    if found is None:
        return None
    same = (found["action"], found["payment_intent"], found["reason"]) == (action, intent, reason)
    if not same or (member_id is not None and found["member_id"] != member_id):
        raise IDEMPOTENCY_CONFLICT()
    return Settlement.of(found, replayed=True)


def _name(node: Node, member_id: str) -> str:
    with node.ledger.reading() as conn:
        member = members_repo.member(conn, member_id)
    return member_id if member is None else str(member["display_name"])


def _check_request_id(request_id: str) -> None:
    if not REQUEST_ID.match(request_id):
        raise BAD_REQUEST_ID()


def _check_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason or len(reason) > MAX_REASON or not reason.isprintable():
        raise REASON_MISSING(maximum=MAX_REASON)
    return reason
