"""Posting a batch of checked orders in one database transaction.

The contract, after TigerBeetle: each order in a batch succeeds or fails on its own, in
order, as if posted one after the other; a batch is one commit, so many payers share one
fsync (group commit). Within the transaction the accounts touched are locked in id order
(PostgreSQL) or the whole database is (SQLite, BEGIN IMMEDIATE), balances are read under
that lock, and every order is checked against the running balances before anything is
written. On PostgreSQL a batch of payments is usually judged on the balances this process
last committed, and its write, in the same round trip as the commit, locks the rows and
goes on only if they still give every order the outcome it was given (see `_balances`).
The database re-checks what it can (CHECK no overdraft, zero-sum and backing triggers,
unique client ids and nonces).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection

from ledger import repository as repo
from ledger.chart import Chart, backing_delta
from ledger.errors import (
    AlreadyUsed,
    BackingViolation,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidReference,
    LedgerError,
    OrderExpired,
    ReplayedNonce,
    RevokedKey,
    UnknownAccount,
    UnknownTransfer,
)
from ledger.leaves import transfer_leaf
from ledger.merkle import leaf_hash
from ledger.operations import Context, Operation, Original, Plan, currencies
from ledger.orders import Order
from ledger.repository import AccountRef, Dependents


@dataclass(frozen=True, slots=True)
class Checked:
    """An order whose signature was verified with the key it names, owned by `signer`."""

    order: Order
    op: Operation
    signer: str
    endorser: str | None = None  # the key id of a second signature the order carries


@dataclass(frozen=True, slots=True)
class Posted:
    """An accepted transfer. `replayed` is True when the same order had been posted before."""

    transfer_id: int
    kind: str
    postings: dict[str, int]
    created_ms: int
    replayed: bool = False
    # The hash its leaf will have in the log (for receipts, and so the sealer need not read
    # the transfer back). None on a replay: the first answer carried it.
    leaf_hash: bytes | None = field(default=None, repr=False)


Outcome = Posted | LedgerError


@dataclass
class Reads:
    """What the judgment made of the balances it read, by account id: the least that an
    accepted debit left on each (`margins`), and those that refused an order (`exact`)."""

    margins: dict[int, int] = field(default_factory=dict)
    exact: set[int] = field(default_factory=set)


@dataclass
class Batch:
    """Everything one batch needs besides the connection."""

    chart: Chart
    max_amount: int
    now_ms: int
    accounts: dict[str, AccountRef]  # cache shared across batches: accounts never change
    # Replays are rare: a batch first relies on the unique keys to catch a reused client id
    # or nonce (one query less per batch), and is re-run carefully if they fire.
    careful: bool = False
    take_ids: Callable[[Connection, int], list[int]] = repo.allocate_transfer_ids
    # Balances as this process last committed them, by account id, shared across batches
    # (None: read them under lock every time). Another process's writes since may have
    # moved them. A batch judged on them needs no round trip before its write, which checks
    # what the judgment needed of them (see `_balances`).
    known_balances: dict[int, int] | None = None
    lock_first: bool = False  # judge on balances read under lock, whatever is known
    expectation: repo.Expectation | None = None
    base: dict[int, int] = field(default_factory=dict)  # balances before this batch
    reads: Reads = field(default_factory=Reads)
    outcomes: list[Outcome | None] = field(default_factory=list)


def post_batch(conn: Connection, items: Sequence[Checked], batch: Batch) -> list[Outcome]:
    """Post `items` in one transaction on `conn` and commit it; one outcome per item."""
    batch.outcomes = [None] * len(items)
    if batch.careful:
        _replays(conn, items, batch, range(len(items)))
    _refuse_expired(items, batch)
    if batch.careful:
        _reused_nonces(conn, items, batch)
    plans = _plans(conn, items, batch)
    if batch.careful:
        _used_up(conn, plans, batch)
    accepted = _apply(conn, items, plans, batch)
    _bound_expectation(batch)
    # A refused order may be a copy of one posted meanwhile (a phone resending on a bad
    # connection, another process taking the first copy): it gets that result, not the
    # refusal. Looked for after the judgment: judged under lock, whatever took the money or
    # the nonce has committed and is seen (also when the careful look before missed it);
    # judged on known balances, the write checks that those which refused an order have not
    # moved, and has the batch judged again under lock if they have.
    _replays(conn, items, batch, _refused(batch))
    _write(conn, items, plans, accepted, batch)
    return [o if o is not None else LedgerError("not posted") for o in batch.outcomes]


def _refused(batch: Batch) -> list[int]:
    return [
        i
        for i, outcome in enumerate(batch.outcomes)
        if isinstance(outcome, LedgerError)
        and not isinstance(outcome, IdempotencyConflict | _Pending)
    ]


def _live(batch: Batch) -> list[int]:
    return [i for i, outcome in enumerate(batch.outcomes) if outcome is None]


def _refuse_expired(items: Sequence[Checked], batch: Batch) -> None:
    for i in _live(batch):  # a replay gets its first result, even once expired
        item = items[i]
        if item.order.expires * 1000 < batch.now_ms:
            batch.outcomes[i] = OrderExpired(
                "this order has expired; sign a new one", expires=item.order.expires
            )


def _replays(
    conn: Connection, items: Sequence[Checked], batch: Batch, indexes: Iterable[int]
) -> None:
    """Same client id + same order -> the first result; + another order -> a conflict."""
    live = list(indexes)
    if not live:
        return
    found = repo.transfers_by_client_id(
        conn, {(items[i].signer, items[i].order.client_id) for i in live}
    )
    if not found:
        return
    legs = repo.postings_of(conn, [t.id for t in found.values()])
    for i in live:
        stored = found.get((items[i].signer, items[i].order.client_id))
        if stored is None:
            continue
        if stored.order_json.encode() == items[i].order.canonical:
            batch.outcomes[i] = Posted(
                stored.id, stored.kind, legs[stored.id], stored.created_ms, replayed=True
            )
        else:
            batch.outcomes[i] = IdempotencyConflict(
                "this client id was already used for a different order",
                client_id=items[i].order.client_id,
                transfer_id=stored.id,
            )


def _reused_nonces(conn: Connection, items: Sequence[Checked], batch: Batch) -> None:
    live = _live(batch)
    used = repo.used_nonces(conn, {(items[i].order.key_id, items[i].order.nonce) for i in live})
    for i in live:
        order = items[i].order
        if (order.key_id, order.nonce) in used:
            batch.outcomes[i] = ReplayedNonce(
                "this order's nonce was already used", nonce=order.nonce
            )


def _used_up(conn: Connection, plans: dict[int, Plan], batch: Batch) -> None:
    """Refuse orders whose one-time token a stored transfer used (careful batches: the
    others rely on the unique key, and are run again carefully if it fires)."""
    used = repo.used_once(conn, {p.once for p in plans.values() if p.once is not None})
    for i, plan in list(plans.items()):
        if plan.once in used:
            batch.outcomes[i] = _already_used(plan.once, used[plan.once])
            del plans[i]


def _already_used(once: str, transfer_id: int | None = None) -> AlreadyUsed:
    return AlreadyUsed(
        f"{once.split(':')[0]} already used by another transfer", once=once, transfer_id=transfer_id
    )


def _plans(conn: Connection, items: Sequence[Checked], batch: Batch) -> dict[int, Plan]:
    live = _live(batch)
    originals = repo.originals(
        conn, {items[i].order["ref"] for i in live if items[i].op.references}
    )
    plans: dict[int, Plan] = {}
    for i in live:
        try:
            plans[i] = _plan(items[i], originals, batch)
        except LedgerError as exc:
            batch.outcomes[i] = exc
    _resolve_accounts(conn, {code for p in plans.values() for code in p.postings}, batch)
    for i, plan in list(plans.items()):
        missing = [code for code in plan.postings if code not in batch.accounts]
        if missing:
            batch.outcomes[i] = UnknownAccount(f"no account {missing[0]!r}", account=missing[0])
            del plans[i]
    return plans


def _plan(item: Checked, originals: dict[int, Original], batch: Batch) -> Plan:
    original = None
    if item.op.references:
        ref = item.order["ref"]
        original = originals.get(ref)
        if original is None:
            raise UnknownTransfer(f"no transfer {ref}", ref=ref)
        if original.kind not in item.op.references:
            raise InvalidReference(f"a {item.op.kind} cannot refer to a {original.kind}", ref=ref)
    plan = item.op.plan(item.order, Context(batch.chart, batch.max_amount, original))
    if any(currencies(batch.chart, plan.postings).values()):
        raise AssertionError(f"{item.op.kind} built unbalanced postings")  # a bug, not input
    if backing_delta(plan.postings) < 0:
        raise BackingViolation("this would leave units without euros in reserve")
    return plan


def _resolve_accounts(conn: Connection, codes: set[str], batch: Batch) -> None:
    missing = codes - batch.accounts.keys()
    if missing:
        batch.accounts.update(repo.accounts_by_code(conn, missing, batch.chart))


def _apply(
    conn: Connection, items: Sequence[Checked], plans: dict[int, Plan], batch: Batch
) -> list[int]:
    """Judge each order in turn against running balances, as if posted one after the other;
    return the accepted indexes."""
    accounts = batch.accounts
    balances, revoked = _balances(conn, items, plans, batch)
    deps = repo.dependents(
        conn,
        {p.ref for p in plans.values() if p.ref is not None}
        | {p.unrefund[0] for p in plans.values() if p.unrefund},
    )
    taken: dict[tuple[str, str], int] = {}  # client id -> the earlier order that took it
    nonces: set[tuple[str, str]] = set()
    used: set[str] = set()  # one-time tokens taken by earlier orders of this batch
    accepted: list[int] = []
    for i, item in enumerate(items):
        order, outcome = item.order, batch.outcomes[i]
        if isinstance(outcome, Posted | IdempotencyConflict):
            continue  # decided by a transfer stored before this batch
        first = taken.get((item.signer, order.client_id))
        if first is not None:  # an earlier order of this batch was posted with this id
            same = items[first].order.canonical == order.canonical
            batch.outcomes[i] = (
                _Pending(first)
                if same
                else IdempotencyConflict(
                    "this client id was already used for a different order",
                    client_id=order.client_id,
                )
            )
            continue
        if outcome is not None or i not in plans:
            continue  # refused on its own (expired, malformed, unknown account...)
        once = plans[i].once
        refusal = (
            _already_used(once)
            if once in used
            else _refusal(item, plans[i], revoked, nonces, deps, balances, accounts, batch.reads)
        )
        if refusal is not None:
            batch.outcomes[i] = refusal
            continue
        plan = plans[i]
        for code, amount in plan.postings.items():
            balances[accounts[code].id] += amount
        if plan.ref is not None:
            before = deps.get(plan.ref, Dependents())
            deps[plan.ref] = Dependents(
                before.refunded + plan.refund, before.settled or plan.settles
            )
        if plan.unrefund is not None:
            payment, cents = plan.unrefund
            before = deps.get(payment, Dependents())
            deps[payment] = Dependents(before.refunded - cents, before.settled)
        taken[(item.signer, order.client_id)] = i
        nonces.add((order.key_id, order.nonce))
        if plan.once is not None:
            used.add(plan.once)
        accepted.append(i)
    return accepted


def _balances(
    conn: Connection, items: Sequence[Checked], plans: dict[int, Plan], batch: Batch
) -> tuple[dict[int, int], set[str]]:
    """The balances to judge the batch on, and which of its signers' keys are revoked.

    Read under lock, one round trip; or, when this process knows every balance the
    judgment reads (those of the accounts debited that may not go negative) and no order
    refers to another transfer (what hangs on it is read under lock), taken from what it
    knows. The write then locks the same rows in the same order and commits only if no
    signer's key was revoked since and each balance still gives every order the outcome it
    was given (`_bound_expectation`); if not, the batch is judged again under lock. Either
    way each order's outcome is the one the balances it is committed against give it."""
    if not plans:
        return {}, set()
    accounts = batch.accounts
    touched = {accounts[c].id for p in plans.values() for c in p.postings}
    signers = {items[i].order.key_id for i in plans}
    signers |= {e for i in plans if (e := items[i].endorser) is not None}
    known = batch.known_balances
    if known is not None and not (batch.careful or batch.lock_first or _refers(plans)):
        read = {
            accounts[code].id
            for plan in plans.values()
            for code, amount in plan.postings.items()
            if amount < 0 and not accounts[code].may_go_negative
        }
        if read <= known.keys():
            batch.base = {i: known[i] for i in touched if i in known}
            # What the judgment needs of each balance is known once it is made.
            batch.expectation = repo.Expectation(touched, {}, signers)
            return {i: batch.base.get(i, 0) for i in touched}, set()
    balances, revoked = repo.lock_balances(conn, touched, signers)
    batch.base = dict(balances)
    return balances, revoked


def _refers(plans: dict[int, Plan]) -> bool:
    return any(p.ref is not None or p.unrefund is not None for p in plans.values())


def _bound_expectation(batch: Batch) -> None:
    """What a batch judged on known balances needs of them at its write. A balance that
    refused an order must be what it was (the refusal says what was available); any other
    balance read may have moved, by another process's payments meanwhile, as long as every
    debit accepted still fits: shifted by d, each running balance shifts by d, so at
    least its value less the least an accepted debit left on it. One account debited by
    several processes at once moves between any one's read and its write: requiring its
    value would send almost every batch of it to be judged again under lock."""
    expected, reads = batch.expectation, batch.reads
    if expected is None:
        return
    batch.expectation = replace(
        expected,
        balances={i: batch.base[i] for i in reads.exact},
        floors={i: batch.base[i] - m for i, m in reads.margins.items() if i not in reads.exact},
    )


def _refusal(
    item: Checked,
    plan: Plan,
    revoked: set[str],
    nonces: set[tuple[str, str]],
    deps: dict[int, Dependents],
    balances: dict[int, int],
    accounts: dict[str, AccountRef],
    reads: Reads,
) -> LedgerError | None:
    order = item.order
    if order.key_id in revoked:
        return RevokedKey("the key that signed this order is revoked", key=order.key_id)
    if item.endorser in revoked:
        return RevokedKey("the key that authorised this order is revoked", key=item.endorser)
    if (order.key_id, order.nonce) in nonces:
        return ReplayedNonce("this order's nonce was already used", nonce=order.nonce)
    return _claim_refusal(plan, deps) or _overdraft(plan, balances, accounts, reads)


class _Pending(LedgerError):
    """Placeholder: a repeat of an order of the same batch gets its result once written."""

    def __init__(self, first: int) -> None:
        super().__init__("duplicate in batch")
        self.first = first


def _claim_refusal(plan: Plan, deps: dict[int, Dependents]) -> LedgerError | None:
    if plan.ref is None:
        return None
    done = deps.get(plan.ref, Dependents())
    if done.settled:
        return InvalidReference("this transfer was already paid out or corrected", ref=plan.ref)
    if plan.settles and done.refunded:
        return InvalidReference(
            "this transfer was partly refunded; correct the refunds first", ref=plan.ref
        )
    if plan.refund and done.refunded + plan.refund > plan.refund_limit:
        return InvalidReference(
            "refunds cannot exceed the payment",
            ref=plan.ref,
            refundable=plan.refund_limit - done.refunded,
        )
    return None


def _overdraft(
    plan: Plan, balances: dict[int, int], accounts: dict[str, AccountRef], reads: Reads
) -> LedgerError | None:
    for code, amount in plan.postings.items():
        ref = accounts[code]
        if amount >= 0 or ref.may_go_negative:
            continue
        left = balances[ref.id] + amount
        if left < 0:
            reads.exact.add(ref.id)
            return InsufficientFunds(
                f"not enough on {code}", account=code, available=balances[ref.id], needed=-amount
            )
        reads.margins[ref.id] = min(left, reads.margins.get(ref.id, left))
    return None


def _write(
    conn: Connection,
    items: Sequence[Checked],
    plans: dict[int, Plan],
    accepted: list[int],
    batch: Batch,
) -> None:
    """Write the accepted transfers and commit."""
    transfer_rows: list[dict[str, Any]] = []
    posting_rows: list[dict[str, Any]] = []
    deltas: dict[int, int] = {}
    if accepted:
        ids = batch.take_ids(conn, len(accepted))
        for transfer_id, i in zip(ids, accepted, strict=True):
            order, plan = items[i].order, plans[i]
            transfer_rows.append(
                {
                    "id": transfer_id,
                    "kind": order.kind,
                    "initiator": items[i].signer,
                    "client_id": order.client_id,
                    "key_id": order.key_id,
                    "nonce": order.nonce,
                    "order_json": order.canonical.decode(),
                    "signature": order.signature,
                    "ref_id": plan.ref,
                    "created_ms": batch.now_ms,
                    "once_key": plan.once,
                }
            )
            legs = []
            for code, amount in plan.postings.items():
                ref = batch.accounts[code]
                posting_rows.append(
                    {
                        "transfer_id": transfer_id,
                        "account_id": ref.id,
                        "currency": ref.currency,
                        "amount": amount,
                    }
                )
                deltas[ref.id] = deltas.get(ref.id, 0) + amount
                legs.append((code, ref.currency, amount))
            leaf = leaf_hash(
                transfer_leaf(
                    transfer_id,
                    batch.now_ms,
                    transfer_rows[-1]["order_json"],
                    order.signature,
                    legs,
                )
            )
            batch.outcomes[i] = Posted(
                transfer_id, order.kind, plan.postings, batch.now_ms, leaf_hash=leaf
            )
    repo.write_batch(conn, transfer_rows, posting_rows, deltas, batch.expectation)
    if batch.known_balances is not None:  # committed
        batch.known_balances.update((i, b + deltas.get(i, 0)) for i, b in batch.base.items())
    for i, outcome in enumerate(batch.outcomes):
        if isinstance(outcome, _Pending):
            first = batch.outcomes[outcome.first]
            assert isinstance(first, Posted)  # only accepted orders are repeated
            batch.outcomes[i] = Posted(
                first.transfer_id, first.kind, first.postings, first.created_ms, replayed=True
            )
