"""The rules of payouts.

Bank details: a merchant's device key signs a `bank_details` statement (the fields every
order carries, then `member`, `iban`, `bic`, `holder`, and `previous`: the version it
replaces, 0 for the first). The node checks it against a key the log registers for that
member and not revoked, then appends a version; nothing is overwritten. `previous` ties a
statement to the details it changes: an old statement sent again can never roll them back.

Batches: the pending reconversions whose member has bank details become one SEPA
credit-transfer file (pain.001.001.03), written once and kept. Paying a batch pays each of
its reconversions through the reconversion's own `mark_paid` (its ledger payout, whose
client id makes it once); cancelling gives them back to the queue.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nacl.exceptions
import nacl.signing
from sqlalchemy.exc import IntegrityError

from ledger import repository as ledger_repo
from ledger.canonical import b64, canonical
from ledger.errors import LedgerError
from ledger.orders import COMMON_FIELDS, read_common
from ledger.signing import SignedOrder
from members.access import Member, now_ms
from members.errors import BANK_REF_MISSING
from merchants import repository as reconversions_repo
from merchants import service as reconversion
from merchants.payouts import repository as repo
from merchants.payouts import sepa
from merchants.payouts.banking import (
    checked_bic,
    checked_holder,
    checked_iban,
    grouped,
    masked,
)
from merchants.payouts.errors import (
    BAD_DETAILS_SIGNATURE,
    BAD_STATEMENT,
    BATCH_CANCELLED,
    BATCH_ID_CONFLICT,
    BATCH_PAID,
    BATCH_RACE,
    NOT_READY,
    NOT_YOUR_DETAILS,
    NOTHING_TO_PAY,
    REVOKED_SIGNING_KEY,
    STALE_DETAILS,
    STATEMENT_EXPIRED,
    STATEMENT_REPLAYED,
    UNKNOWN_BATCH,
    UNKNOWN_SIGNING_KEY,
)
from web.refusals import Refusal

if TYPE_CHECKING:
    from runtime.node import Node

KIND = "bank_details"
FIELDS = frozenset({"member", "iban", "bic", "holder", "previous"})
QUEUE_LIMIT = 10_000
RECENT_BATCHES = 50

# -- bank details ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Details:
    """One version of a member's bank account, and who signed it."""

    id: int
    member: str
    version: int
    iban: str
    bic: str
    holder: str
    key_id: str
    statement: str
    signature: str
    created_ms: int

    @property
    def masked_iban(self) -> str:
        return masked(self.iban)

    @property
    def grouped_iban(self) -> str:
        return grouped(self.iban)


def _details(row: Any) -> Details:
    return Details(
        id=row["id"],
        member=row["member_id"],
        version=row["version"],
        iban=row["iban"],
        bic=row["bic"],
        holder=row["holder"],
        key_id=row["key_id"],
        statement=row["statement"],
        signature=row["signature"],
        created_ms=row["created_ms"],
    )


def current_details(node: Node, member_id: str) -> Details | None:
    with node.ledger.reading() as conn:
        row = repo.current_details(conn, member_id)
    return None if row is None else _details(row)


def history(node: Node, member_id: str) -> list[Details]:
    """Every version, newest first (each with the one before it: old → new)."""
    with node.ledger.reading() as conn:
        return [_details(r) for r in repo.details_history(conn, member_id)]


def record_details(node: Node, member: Member, envelope: SignedOrder) -> Details:
    """Append the version of `member`'s bank details that their device key signed."""
    reconversion.may_reconvert(node.settings, member)
    fields = _statement(node, member, envelope)
    try:
        with node.engine.begin() as conn:
            # The signature first: nothing about unsigned details is worth an answer.
            _check_signer(conn, member, envelope, fields)
            row = _version(member, envelope, fields)
            _check_fresh(conn, member, fields)
            details_id = repo.insert_details(conn, row)
    except IntegrityError:
        # The same statement, or another change, landed meanwhile: say which.
        with node.ledger.reading() as conn:
            _check_fresh(conn, member, fields)
        raise STATEMENT_REPLAYED() from None
    return Details(id=details_id, member=member.id, **_without(row, "member_id", "nonce"))


def _version(member: Member, envelope: SignedOrder, fields: dict[str, Any]) -> dict[str, Any]:
    """The new version's row, its IBAN, BIC and holder checked."""
    iban = checked_iban(fields["iban"])
    bic = checked_bic(fields["bic"], iban)
    return {
        "member_id": member.id,
        "version": fields["previous"] + 1,
        "iban": iban.compact,
        "bic": bic.compact,
        "holder": checked_holder(fields["holder"]),
        "key_id": fields["key"],
        "statement": canonical(fields).decode(),
        "signature": b64(envelope.signature),
        "nonce": fields["nonce"],
        "created_ms": now_ms(),
    }


def _without(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}


def _statement(node: Node, member: Member, envelope: SignedOrder) -> dict[str, Any]:
    """The statement's fields, well-formed, for this node and this member, not expired."""
    try:
        order = read_common(envelope.order, envelope.signature)
    except LedgerError as exc:
        raise BAD_STATEMENT(why=str(exc)) from None
    fields = dict(order.fields)
    extra = sorted(set(fields) - COMMON_FIELDS - FIELDS)
    missing = sorted(FIELDS - set(fields))
    if order.kind != KIND or extra or missing:
        raise BAD_STATEMENT(why=f"kind {KIND}, fields {', '.join(sorted(FIELDS))}")
    if fields["node"] != node.ledger.origin:
        raise BAD_STATEMENT(why=f"node {node.ledger.origin}")
    previous = fields["previous"]
    if not isinstance(previous, int) or isinstance(previous, bool) or not 0 <= previous < 2**31:
        raise BAD_STATEMENT(why="previous: the version replaced, 0 for the first")
    if not all(isinstance(fields[n], str) for n in ("member", "iban", "bic", "holder")):
        raise BAD_STATEMENT(why="member, iban, bic and holder are text")
    if fields["member"] != member.id:
        raise NOT_YOUR_DETAILS()
    now = time.time()
    if order.expires < now:
        raise STATEMENT_EXPIRED()
    if order.expires > now + node.settings.order_max_ttl:
        raise BAD_STATEMENT(why=f"expires within {node.settings.order_max_ttl} s")
    return fields


def _check_signer(conn: Any, member: Member, envelope: SignedOrder, fields: dict[str, Any]) -> None:
    """A key the log registers for this member, live (held so until the write commits),
    whose signature covers exactly these fields."""
    key = ledger_repo.key_row(conn, fields["key"], hold=True)
    if key is None or key["owner"] != member.account:
        raise UNKNOWN_SIGNING_KEY()
    if key["revoked_ms"] is not None:
        raise REVOKED_SIGNING_KEY()
    try:
        verifier = nacl.signing.VerifyKey(bytes(key["public_key"]))
        verifier.verify(canonical(fields), envelope.signature)
    except nacl.exceptions.BadSignatureError:
        raise BAD_DETAILS_SIGNATURE() from None


def _check_fresh(conn: Any, member: Member, fields: dict[str, Any]) -> None:
    if repo.nonce_used(conn, fields["nonce"]):
        raise STATEMENT_REPLAYED()
    current = repo.current_details(conn, member.id)
    version = 0 if current is None else int(current["version"])
    if fields["previous"] != version:
        raise STALE_DETAILS(current=version)


# -- the queue and the batches -----------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """A pending reconversion and the bank account its euros go to."""

    reconversion: reconversion.Reconversion
    details: Details


@dataclass(frozen=True)
class Apart:
    """A pending reconversion that cannot go into a file, and why (a msgid)."""

    reconversion: reconversion.Reconversion
    why: str


NO_DETAILS_YET = "No bank details recorded: ask the merchant to record them."
DETAILS_INVALID = "The recorded IBAN or BIC no longer passes the checks: ask for new ones."
HELD_ALONE = "Being paid or rejected alone: out of the files until that is done."


@dataclass(frozen=True)
class Queue:
    ready: list[Ready]
    apart: list[Apart]
    batched: dict[int, int]  # pending reconversion id -> its unpaid batch


def queue(node: Node) -> Queue:
    """The pending reconversions: ready for a file, apart (with why), or in a batch."""
    pending = reconversion.reconversions_in(node, "pending", limit=QUEUE_LIMIT)
    with node.ledger.reading() as conn:
        batched = repo.batched(conn, [r.id for r in pending])
        held = repo.held(conn, [r.id for r in pending])
        details = repo.current_details_of(conn, {r.member for r in pending})
    ready, apart = [], []
    for r in pending:
        if r.id in batched:
            continue
        row = details.get(r.member)
        if r.id in held:
            apart.append(Apart(r, HELD_ALONE))
        elif row is None:
            apart.append(Apart(r, NO_DETAILS_YET))
        elif not _still_valid(row):
            apart.append(Apart(r, DETAILS_INVALID))
        else:
            ready.append(Ready(r, _details(row)))
    return Queue(ready, apart, batched)


def _still_valid(row: Any) -> bool:
    try:
        checked_bic(row["bic"], checked_iban(row["iban"]))
    except Refusal:
        return False
    return True


@dataclass(frozen=True)
class Item:
    reconversion_id: int
    amount: int
    iban: str
    bic: str
    holder: str


@dataclass(frozen=True)
class Batch:
    id: int
    status: str
    message_id: str
    total: int
    count: int
    created_by: str
    created_ms: int
    bank_ref: str | None
    decided_by: str | None
    decided_ms: int | None
    items: tuple[Item, ...] = ()


def _batch(row: Any, items: list[Any] | None = None) -> Batch:
    return Batch(
        id=row["id"],
        status=row["status"],
        message_id=row["message_id"],
        total=row["total"],
        count=row["count"],
        created_by=row["created_by"],
        created_ms=row["created_ms"],
        bank_ref=row["bank_ref"],
        decided_by=row["decided_by"],
        decided_ms=row["decided_ms"],
        items=tuple(
            Item(i["reconversion_id"], i["amount"], i["iban"], i["bic"], i["holder"])
            for i in items or ()
        ),
    )


def batches(node: Node) -> list[Batch]:
    with node.ledger.reading() as conn:
        return [_batch(r) for r in repo.batches(conn, RECENT_BATCHES)]


def find_batch(node: Node, batch_id: int) -> Batch:
    with node.ledger.reading() as conn:
        row = repo.batch(conn, batch_id)
        if row is None:
            raise UNKNOWN_BATCH()
        return _batch(row, repo.items_of(conn, batch_id))


@dataclass(frozen=True)
class Made:
    batch: Batch
    replayed: bool  # the same request sent again: the batch it made the first time


def make_batch(
    node: Node,
    treasurer: Member,
    client_id: str | None = None,
    only: list[int] | None = None,
) -> Made:
    """One transfer file of the reconversions ready (all, or exactly those of `only`),
    recorded as an unpaid batch. With a `client_id`, the same request sent again answers
    the batch it made; the id with another request is refused."""
    if client_id is not None:
        earlier = _earlier_batch(node, treasurer, client_id, only)
        if earlier is not None:
            return Made(earlier, True)
    debtor = sepa.debtor(node.plugin_settings("payouts"))
    ready = _chosen(queue(node).ready, only)
    written = sepa.transfer_file(debtor, ready, node.settings.village)
    ids = [r.reconversion.id for r in ready]
    try:
        with node.engine.begin() as conn:
            # Locked first: a request being paid alone is either held already (left out
            # here) or waits for this file and then finds itself in it.
            repo.lock_reconversions(conn, ids)
            if repo.held(conn, ids) or not _all_open(conn, ready):
                raise BATCH_RACE()
            batch_id = repo.insert_batch(conn, _batch_row(written, ready, treasurer, client_id))
            repo.insert_items(conn, [_item(batch_id, r) for r in ready])
    except IntegrityError:
        if client_id is not None:  # the same request, made at once: its batch
            earlier = _earlier_batch(node, treasurer, client_id, only)
            if earlier is not None:
                return Made(earlier, True)
        raise BATCH_RACE() from None
    return Made(find_batch(node, batch_id), False)


def _chosen(ready: list[Ready], only: list[int] | None) -> list[Ready]:
    if only is None:
        if not ready:
            raise NOTHING_TO_PAY()
        return ready
    by_id = {r.reconversion.id: r for r in ready}
    missing = sorted(set(only) - set(by_id))
    if missing:
        raise NOT_READY(ids=", ".join(map(str, missing)))
    if not only:
        raise NOTHING_TO_PAY()
    return [by_id[i] for i in sorted(set(only))]


def _all_open(conn: Any, ready: list[Ready]) -> bool:
    """Still pending, and nothing settled them in the ledger (a decision posted but not
    yet recorded in its row)."""
    if not repo.all_pending(conn, [r.reconversion.id for r in ready]):
        return False
    redemptions = [r.reconversion.redemption_id for r in ready]
    return not reconversions_repo.settlements(conn, redemptions)


def _earlier_batch(
    node: Node, treasurer: Member, client_id: str, only: list[int] | None
) -> Batch | None:
    """The batch this request id made; refused if it was another request."""
    with node.ledger.reading() as conn:
        row = repo.batch_of_client_id(conn, client_id)
    if row is None:
        return None
    found = find_batch(node, int(row["id"]))
    held = sorted(i.reconversion_id for i in found.items)
    if found.created_by != treasurer.id or (only is not None and sorted(set(only)) != held):
        raise BATCH_ID_CONFLICT(batch=found.id)
    return found


def _batch_row(
    written: sepa.Written, ready: list[Ready], treasurer: Member, client_id: str | None
) -> dict[str, Any]:
    return {
        "status": "unpaid",
        "message_id": written.message_id,
        "sepa_xml": written.xml.decode(),
        "total": sum(r.reconversion.net for r in ready),
        "count": len(ready),
        "created_by": treasurer.id,
        "created_ms": now_ms(),
        "client_id": client_id,
    }


def _item(batch_id: int, ready: Ready) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "reconversion_id": ready.reconversion.id,
        "bank_details_id": ready.details.id,
        "amount": ready.reconversion.net,
    }


def batch_file(node: Node, batch_id: int) -> tuple[str, bytes]:
    """The file as it was first written, and its name."""
    with node.ledger.reading() as conn:
        row = repo.batch(conn, batch_id)
    if row is None:
        raise UNKNOWN_BATCH()
    return f"sou-virements-{row['id']}.xml", str(row["sepa_xml"]).encode()


def pay_batch(node: Node, treasurer: Member, batch_id: int, bank_ref: str) -> Batch:
    """The bank executed the file: mark the batch paid, then each of its reconversions
    through their own payout. The same reference sent again (or at once) finishes what is
    left and pays nothing twice; another reference is refused."""
    bank_ref = " ".join(bank_ref.split())[:128]
    if not bank_ref or not bank_ref.isprintable():
        raise BANK_REF_MISSING()
    with node.engine.begin() as conn:
        won = repo.decide_batch(conn, batch_id, "paid", treasurer.id, now_ms(), bank_ref)
    found = find_batch(node, batch_id)
    if not won:
        if found.status == "cancelled":
            raise BATCH_CANCELLED()
        if found.bank_ref != bank_ref:
            raise BATCH_PAID(bank_ref=found.bank_ref)
    for item in found.items:
        _pay_item(node, treasurer, item.reconversion_id, batch_id, bank_ref)
    return found


def _pay_item(node: Node, treasurer: Member, reconversion_id: int, batch_id: int, ref: str) -> None:
    try:
        reconversion.mark_paid(node, treasurer, reconversion_id, ref, batch=batch_id)
    except Refusal as refusal:
        done = reconversion.find_reconversion(node, reconversion_id)
        # Paid by this batch's other request: its payout carries the same reference.
        if refusal.code != "already_decided" or done is None or done.bank_ref != ref:
            raise


def cancel_batch(node: Node, treasurer: Member, batch_id: int) -> Batch:
    """Before it is paid: its reconversions go back to the queue (the file is kept)."""
    at = now_ms()
    with node.engine.begin() as conn:
        won = repo.decide_batch(conn, batch_id, "cancelled", treasurer.id, at, None)
        if won:
            repo.release_items(conn, batch_id, at)
    found = find_batch(node, batch_id)
    if not won:
        if found.status == "paid":
            raise BATCH_PAID(bank_ref=found.bank_ref)
        if found.status == "cancelled":
            raise BATCH_CANCELLED()
    return found


def live_batch_of(node: Node, reconversion_id: int) -> int | None:
    with node.ledger.reading() as conn:
        return repo.batched(conn, [reconversion_id]).get(reconversion_id)


def statement_of(details: Details) -> dict[str, Any]:
    """The signed statement as the member's device sent it: anyone may check it again."""
    return {"order": json.loads(details.statement), "sig": details.signature}
