"""Reconversion: a merchant (or a resident, where the association allows it) turns units
back into euros, for a fee; the treasurer pays the euros out or rejects the request.

The member signs a `redemption` on their device: the units leave circulation at once (the
net euros move from the reserve to `payouts:pending`), and a `reconversions` row follows.
The ledger is the truth: a row missing after a crash between the two writes, or a
decision posted but not recorded, is rebuilt from the transfers (`record_missing`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from ledger import fee_rules
from ledger import repository as ledger_repo
from ledger.errors import LedgerError
from ledger.operations import TREASURER
from ledger.orders import MAX_MEMO
from ledger.signing import SignedOrder
from members.access import Member, now_ms
from members.errors import (
    AMOUNT_TOO_LARGE,
    BAD_AMOUNT,
    BAD_KIND,
    BANK_REF_MISSING,
    MEMBERSHIP_LAPSED,
    NOT_YOUR_WALLET,
    REASON_MISSING,
    WALLET_FROZEN,
)
from merchants import repository as repo
from merchants.errors import (
    ALREADY_DECIDED,
    AMOUNT_TOO_SMALL,
    FEE_MISMATCH,
    FEES_SPENT,
    NOT_SETTLED,
    RECONVERSION_NOT_ALLOWED,
    RESERVE_SHORT,
    UNKNOWN_RECONVERSION,
)
from merchants.payouts import repository as payouts_repo
from merchants.payouts.errors import IN_BATCH
from runtime.settings import Settings
from runtime.signing import post, sign_as
from web.refusals import Money, Refusal

if TYPE_CHECKING:
    from runtime.node import Node

RECENT = 50

# -- the fee -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """What a reconversion of `amount` units costs. All in cents."""

    amount: int
    fee: int  # kept from the amount: the association's part plus the cause's
    cause_fee: int  # the cause's part of the fee

    @property
    def association_fee(self) -> int:
        return self.fee - self.cause_fee

    @property
    def net(self) -> int:
        """Euros paid out to the member."""
        return self.amount - self.fee


def quote(settings: Settings, amount: int) -> Quote:
    """The fee and its split for reconverting `amount` cents of units.

    Rounding (integers only): the fee is rounded *up* to the cent, so that a request split
    into small ones never pays less than the stated rate; the cause's share of the fee is
    rounded *down* to whole cents, the remaining cent staying with the association.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise BAD_AMOUNT()
    if amount > settings.max_amount:
        raise AMOUNT_TOO_LARGE(maximum=Money(settings.max_amount))
    fee, cause_fee = fee_rules.reconversion_fee(
        amount, settings.reconversion_fee_bps, settings.reconversion_cause_share
    )
    if fee >= amount:
        raise AMOUNT_TOO_SMALL()
    return Quote(amount, fee, cause_fee)


# -- who may reconvert ---------------------------------------------------------------------


def may_reconvert(settings: Settings, member: Member) -> None:
    """Merchants reconvert; residents only where the association allows it."""
    if member.role == "merchant" or (
        member.role == "resident" and settings.residents_may_reconvert
    ):
        return
    raise RECONVERSION_NOT_ALLOWED()


def _check_standing(settings: Settings, member: Member) -> None:
    if member.frozen_reason:
        raise WALLET_FROZEN(reason=member.frozen_reason)
    if settings.membership_required and not member.membership_current():
        raise MEMBERSHIP_LAPSED()


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fee(settings: Settings, currency: str, order: dict[str, Any]) -> None:
    """The signed fee and cause's part must be exactly the quote's for the amount."""
    amount = order.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise BAD_AMOUNT()
    expected = quote(settings, amount)
    fee, cause_fee = order.get("fee"), order.get("cause_fee", 0)
    if not (_whole(fee) and _whole(cause_fee)) or (fee, cause_fee) != (
        expected.fee,
        expected.cause_fee,
    ):
        raise FEE_MISMATCH(
            amount=Money(expected.amount, currency),
            fee=Money(expected.fee, currency),
            cause_fee=Money(expected.cause_fee, currency),
            expected_fee=expected.fee,
            expected_cause_fee=expected.cause_fee,
        )


# -- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconversion:
    id: int
    member: str
    amount: int
    fee: int
    cause_fee: int
    status: str
    redemption_id: int
    created_ms: int
    bank_ref: str | None = None
    reason: str | None = None
    decision_id: int | None = None
    decided_by: str | None = None
    decided_ms: int | None = None
    display_name: str | None = None
    trade_name: str | None = None

    @property
    def net(self) -> int:
        return self.amount - self.fee


def _reconversion(row: Any) -> Reconversion:
    return Reconversion(
        id=row["id"],
        member=row["member_id"],
        amount=row["amount"],
        fee=row["fee"],
        cause_fee=row["cause_fee"],
        status=row["status"],
        redemption_id=row["redemption_id"],
        created_ms=row["created_ms"],
        bank_ref=row["bank_ref"],
        reason=row["reason"],
        decision_id=row["decision_id"],
        decided_by=row["decided_by"],
        decided_ms=row["decided_ms"],
        display_name=row.get("display_name"),
        trade_name=row.get("trade_name"),
    )


def _keep_fee_rule(node: Node) -> None:
    """The rule the fee was checked against is the one in force when the units go out: the
    audit checks each fee against the rule of its time (settings changed on a running node
    are recorded here, as they are when a node opens)."""
    settings = node.settings
    fee_rules.record(
        node.engine,
        node.node_key,
        node.ledger.origin,
        settings.reconversion_fee_bps,
        settings.reconversion_cause_share,
        int(node.ledger.clock() * 1000),
    )


def request_reconversion(
    node: Node, member: Member, envelope: SignedOrder
) -> tuple[Reconversion, bool]:
    """Take the units out of circulation now (the member's signed redemption) and queue
    the payout; (the request, whether it had been made before with this same order)."""
    settings = node.settings
    may_reconvert(settings, member)
    order = envelope.order
    if order.get("kind") != "redemption":
        raise BAD_KIND()
    if order.get("from") != member.account:
        raise NOT_YOUR_WALLET()
    # The same order sent again gets its first answer, whatever changed since.
    if not _sent_before(node, member.account, order.get("id")):
        _check_standing(settings, member)
        _check_fee(settings, node.ledger.chart.local, order)
        _keep_fee_rule(node)
    try:
        posted = post(node, envelope)
    except LedgerError as exc:
        raise _reserve_short(exc) from None
    return _record(node, posted.transfer_id, order, posted.created_ms), posted.replayed


def _sent_before(node: Node, account: str, client_id: object) -> bool:
    if not isinstance(client_id, str):
        return False
    with node.ledger.reading() as conn:
        return bool(ledger_repo.transfers_by_client_id(conn, {(account, client_id)}))


def _reserve_short(exc: LedgerError) -> Exception:
    if exc.code == "insufficient_funds" and exc.params.get("account") == "reserve:digital":
        return RESERVE_SHORT()
    return exc


def _record(
    node: Node, redemption_id: int, fields: dict[str, Any], created_ms: int
) -> Reconversion:
    """The request's row, written once; decided already if the ledger says so."""
    with node.ledger.reading() as conn:
        row = repo.reconversion_of_redemption(conn, redemption_id)
        settled = None if row else repo.settlements(conn, [redemption_id]).get(redemption_id)
    if row is None:
        values = {
            "member_id": str(fields["from"]).removeprefix("member:"),
            "amount": fields["amount"],
            "fee": fields["fee"],
            "cause_fee": fields.get("cause_fee", 0),
            "redemption_id": redemption_id,
            "status": "pending",
            "created_ms": created_ms,
        }
        if settled is not None:
            values.update(_decision(settled))
        try:
            with node.engine.begin() as conn:
                repo.insert_reconversion(conn, values)
        except IntegrityError:
            pass  # the same order, recorded meanwhile by its other sending
        with node.ledger.reading() as conn:
            row = repo.reconversion_of_redemption(conn, redemption_id)
    assert row is not None
    return _reconversion(row)


def _decision(settlement: Any) -> dict[str, Any]:
    """A request's decision as the ledger holds it: its payout or its correction."""
    fields = json.loads(settlement["order_json"])
    paid = settlement["kind"] == "payout"
    return {
        "status": "paid" if paid else "rejected",
        "decision_id": settlement["id"],
        "bank_ref": fields.get("bank_ref") if paid else None,
        "reason": None if paid else fields.get("memo"),
        "decided_ms": settlement["created_ms"],
    }


def record_missing(node: Node, account: str | None = None) -> None:
    """Bring the requests in line with the ledger: a row for every redemption (of
    `account`, or everyone's), and the decision of every pending one already settled."""
    with node.ledger.reading() as conn:
        missing = repo.unrecorded_redemptions(conn, account)
        pending = repo.pending_redemptions(conn)
        settled = repo.settlements(conn, list(pending))
    for transfer in missing:
        _record(node, transfer["id"], json.loads(transfer["order_json"]), transfer["created_ms"])
    for redemption_id, settlement in settled.items():
        with node.engine.begin() as conn:
            repo.decide(conn, pending[redemption_id], **_decision(settlement))


def find_reconversion(node: Node, reconversion_id: int) -> Reconversion | None:
    with node.ledger.reading() as conn:
        row = repo.reconversion(conn, reconversion_id)
    return None if row is None else _reconversion(row)


def reconversions_of(node: Node, member: Member) -> list[Reconversion]:
    """A member's own requests, newest first."""
    record_missing(node, member.account)
    with node.ledger.reading() as conn:
        return [_reconversion(r) for r in repo.reconversions_of(conn, member.id, RECENT)]


def reconversions_in(node: Node, status: str, limit: int = 200) -> list[Reconversion]:
    """For the treasurer: the requests in one state, with who asked."""
    record_missing(node)
    with node.ledger.reading() as conn:
        return [_reconversion(r) for r in repo.reconversions_by_status(conn, status, limit)]


# -- the treasurer's decisions -------------------------------------------------------------


def mark_paid(
    node: Node, treasurer: Member, reconversion_id: int, bank_ref: str, *, batch: int | None = None
) -> Reconversion:
    """The euros were sent: a payout of the net amount, signed by the treasurer's role key.
    Its client id comes from the request, so the ledger never pays a request twice. A
    request in a transfer batch is paid with its batch (`batch`), not alone."""
    bank_ref = _one_line(bank_ref, 128)
    if not bank_ref:
        raise BANK_REF_MISSING()
    row = _pending(node, reconversion_id)
    _outside_batches(node, row, batch, treasurer)
    signed = sign_as(
        node,
        TREASURER,
        "payout",
        f"reconversion-{row.id}-payout",
        ref=row.redemption_id,
        amount=row.net,
        bank_ref=bank_ref,
        memo=f"reconversion {row.id}",
    )
    return _settle_held(node, treasurer, row, signed, "bank_ref", bank_ref, batch)


def reject(node: Node, treasurer: Member, reconversion_id: int, reason: str) -> Reconversion:
    """The request is refused: a correction of the redemption, signed by the treasurer's
    role key, gives the units (fee included) back to the member."""
    reason = _one_line(reason, MAX_MEMO)
    if not reason:
        raise REASON_MISSING(maximum=MAX_MEMO)
    row = _pending(node, reconversion_id)
    _outside_batches(node, row, None, treasurer)
    signed = sign_as(
        node,
        TREASURER,
        "correction",
        f"reconversion-{row.id}-rejection",
        ref=row.redemption_id,
        memo=reason,
    )
    return _settle_held(node, treasurer, row, signed, "memo", reason, None)


def _outside_batches(node: Node, row: Reconversion, batch: int | None, by: Member) -> None:
    """A request in an unpaid transfer file is decided with that file: paying it alone too
    would send the euros twice. Decided alone, it is held first (in the transaction that
    finds it in no file, its row locked), so that no file made meanwhile takes it."""
    if batch is not None:
        with node.ledger.reading() as conn:
            holding = payouts_repo.batched(conn, [row.id]).get(row.id)
    else:
        with node.engine.begin() as conn:
            holding = payouts_repo.hold_alone(conn, row.id, by.id, now_ms())
    if holding is not None and holding != batch:
        raise IN_BATCH(batch=holding)


def _settle_held(
    node: Node,
    treasurer: Member,
    row: Reconversion,
    signed: SignedOrder,
    field: str,
    value: str,
    batch: int | None,
) -> Reconversion:
    """`_settle`; a decision alone that settled nothing gives up its hold (a file may take
    the request again)."""
    try:
        return _settle(node, treasurer, row, signed, field, value)
    except Exception:
        if batch is None:
            with node.engine.begin() as conn:
                if not repo.settlements(conn, [row.redemption_id]):
                    payouts_repo.release_hold(conn, row.id)
        raise


def _one_line(text: str, limit: int) -> str:
    """Spaces collapsed (the ledger refuses control characters such as line breaks);
    empty if anything unprintable is left."""
    line = " ".join(text.split())[:limit]
    return line if line.isprintable() else ""


def _pending(node: Node, reconversion_id: int) -> Reconversion:
    record_missing(node)
    with node.ledger.reading() as conn:
        row = repo.reconversion(conn, reconversion_id)
    if row is None:
        raise UNKNOWN_RECONVERSION()
    found = _reconversion(row)
    if found.status != "pending":
        raise _already(found)
    return found


def _already(found: Reconversion) -> Refusal:
    return ALREADY_DECIDED(state=found.status, id=found.id)


def _settle(
    node: Node,
    treasurer: Member,
    row: Reconversion,
    signed: SignedOrder,
    field: str,
    value: str,
) -> Reconversion:
    """Post the decision, then record whatever settled the redemption in the ledger: ours,
    or a decision someone else posted first (then 409)."""
    try:
        post(node, signed)
    except LedgerError as exc:
        # Another decision got there first (same client id, or the redemption settled).
        if exc.code not in ("idempotency_conflict", "invalid_reference"):
            raise _fees_spent(exc) from None
    with node.ledger.reading() as conn:
        settlement = repo.settlements(conn, [row.redemption_id]).get(row.redemption_id)
    if settlement is None:  # the post failed without anything settling the redemption
        raise NOT_SETTLED()
    ours = (
        settlement["kind"] == signed.order["kind"]
        and json.loads(settlement["order_json"]).get(field) == value
    )
    with node.engine.begin() as conn:
        values = _decision(settlement)
        repo.decide(conn, row.id, decided_by=treasurer.id if ours else None, **values)
        if ours:
            repo.claim_decision(conn, row.id, settlement["id"], treasurer.id)
    with node.ledger.reading() as conn:
        decided = _reconversion(repo.reconversion(conn, row.id))
    if not ours or decided.decision_id != settlement["id"]:
        raise _already(decided)
    return decided


def _fees_spent(exc: LedgerError) -> Exception:
    account = str(exc.params.get("account", ""))
    if exc.code == "insufficient_funds" and account.startswith("association:"):
        return FEES_SPENT(account=account)
    return exc
