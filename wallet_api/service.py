"""The rules of the wallet API: joining, logging in, device keys, balance, history, sending
money, receipts. Endpoints stay thin; every decision is here.

Writes to our own tables run in short transactions of their own, never around a ledger
post: on SQLite one writer holds the database at a time, and the poster is that writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import unicodedata
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from ledger import proofs
from ledger import repository as ledger_repo
from ledger.canonical import b64, canonical, unb64
from ledger.chart import member_account
from ledger.errors import LedgerError, NodeBusy, UnknownTransfer
from ledger.operations import NODE
from ledger.posting import Posted
from ledger.service import key_event
from ledger.signing import SignedOrder, new_order
from ledger.signing import key_id as signing_key_id
from wallet_api import repository as repo
from wallet_api.auth import (
    Member,
    forget_principals,
    hash_password,
    now_ms,
    open_session,
    password_matches,
)
from web.refusals import Refusal

if TYPE_CHECKING:
    from runtime.node import Node

log = logging.getLogger(__name__)

MAX_DEVICE_KEYS = 10
POST_TIMEOUT_S = 60  # a payment not committed by then is answered 503: send it again
MEMBER_KINDS_SENT = frozenset({"payment"})  # what a wallet may post through the API
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,}$")


# -- joining and logging in ----------------------------------------------------------------


def member_id_for(name: str) -> str:
    """A readable, unguessable wallet id: `camille-dupont-7k2q`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:30] or "membre"
    return f"{slug}-{secrets.token_hex(2)}"


def check_password(password: str) -> None:
    if len(password) < 10:
        raise Refusal(422, "weak_password", "The password needs at least 10 characters.")
    if len(password) > 200:
        raise Refusal(422, "long_password", "The password is too long (200 characters at most).")


def join(
    node: Node,
    *,
    display_name: str,
    email: str,
    password: str,
    role: str = "resident",
    locale: str = "fr",
    merchant: dict[str, Any] | None = None,
) -> Member:
    """Sign a person up: the member, their wallet account (and trade details), together."""
    from merchants import repository as merchant_repo

    if role not in ("resident", "merchant") or (role == "merchant") != (merchant is not None):
        raise Refusal(422, "bad_role", "One joins as a resident or as a merchant with a trade.")

    def wallet(conn: Connection, member_id: str) -> None:
        if merchant is not None:
            merchant_repo.insert_merchant(conn, {"member_id": member_id, **merchant})
        node.ledger.open_account(member_account(member_id), conn)

    person = {"display_name": display_name, "role": role, "locale": locale}
    return get_member(node, _record_person(node, person, email, password, wallet))


def _record_person(
    node: Node,
    person: dict[str, Any],
    email: str,
    password: str,
    also: Callable[[Connection, str], None] | None = None,
) -> str:
    """Check and record a person who logs in (with `also`'s writes, in one transaction);
    their new member id."""
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise Refusal(422, "bad_email", "This email address does not look right.")
    check_password(password)
    member_id = member_id_for(person["display_name"])
    row = person | {
        "id": member_id,
        "display_name": person["display_name"].strip(),
        "email": email,
        "password_hash": hash_password(password),
        "created_ms": now_ms(),
    }
    try:
        with node.engine.begin() as conn:
            if repo.member_by_email(conn, email) is not None:
                raise _email_taken()
            repo.insert_member(conn, row)
            if also is not None:
                also(conn, member_id)
    except IntegrityError:  # the same email, joining twice at the same moment
        raise _email_taken() from None
    return member_id


def _email_taken() -> Refusal:
    return Refusal(409, "email_taken", "An account already uses this email address.")


def get_member(node: Node, member_id: str) -> Member:
    with node.ledger.reading() as conn:
        row = repo.member(conn, member_id)
    if row is None:
        raise Refusal(404, "unknown_member", "There is no member with this id.")
    return Member.from_row(row)


def log_in(node: Node, email: str, password: str, client_ip: str) -> tuple[Member, str, str]:
    """Check a password, counting failures per email and per address; open a session."""
    settings = node.settings
    email = email.strip().lower()
    subjects = [f"email:{email}", f"ip:{client_ip}"]
    now = now_ms()
    since = now - settings.login_window * 1000
    with node.engine.begin() as conn:
        if repo.failures(conn, subjects, since) >= settings.login_attempts:
            raise Refusal(
                429,
                "too_many_logins",
                "Too many failed logins. Wait {minutes} minutes and try again.",
                minutes=settings.login_window // 60,
                retry_after=settings.login_window,
            )
        row = repo.member_by_email(conn, email)
        if row is None or not password_matches(row["password_hash"], password):
            for subject in subjects:
                repo.add_failure(conn, subject, now, since)
            failed = True
        else:
            repo.clear_failures(conn, subjects[0])
            token, csrf = open_session(conn, row["id"], settings.session_days)
            failed = False
    if failed or row is None:  # committed above: the failure counts though we refuse
        raise Refusal(401, "bad_login", "Wrong email or password.")
    return Member.from_row(row), token, csrf


def log_out(node: Node, token_hash: bytes) -> None:
    with node.engine.begin() as conn:
        repo.delete_session(conn, token_hash)
    forget_principals(node)


# -- device keys ---------------------------------------------------------------------------


def node_key_event(node: Node, action: str, owner: str, public_key: bytes) -> dict[str, Any]:
    """A key event for the node key to sign, once it is found to be the log's node key."""
    signer = node.signing_key(NODE)
    return key_event(
        action, origin=node.ledger.origin, owner=owner, public_key=public_key, signer=signer
    )


def add_device_key(node: Node, member: Member, public_key_b64: str, label: str) -> str:
    """Register a device's public key for a member, signed by the node after the member
    proved who they are (password session). The key event goes into the Merkle log."""
    public_key = _public_key(public_key_b64)
    with node.ledger.reading() as conn:
        active = [d for d in repo.devices_of(conn, member.id) if d["revoked_ms"] is None]
    if len(active) >= MAX_DEVICE_KEYS:
        raise Refusal(
            409,
            "too_many_keys",
            "You have {count} active device keys: revoke one first.",
            count=len(active),
        )
    event = node_key_event(node, "register", member.account, public_key)
    key_id = node.ledger.register_key(event, node.node_key.sign_bytes(canonical(event)))
    with node.engine.begin() as conn:
        repo.insert_device(
            conn,
            {"key_id": key_id, "member_id": member.id, "label": label[:80], "created_ms": now_ms()},
        )
    return key_id


def _public_key(text: str) -> bytes:
    try:
        key = unb64(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise Refusal(422, "bad_public_key", "A device key is 32 bytes of Ed25519, in base64url.")
    return key


def revoke_device_key(node: Node, member: Member, key_id: str) -> None:
    with node.ledger.reading() as conn:
        row = ledger_repo.key_row(conn, key_id)
    if row is None or row["owner"] != member.account:
        raise Refusal(404, "unknown_device_key", "You have no device key with this id.")
    if row["revoked_ms"] is not None:
        return  # revoking twice changes nothing
    event = node_key_event(node, "revoke", member.account, bytes(row["public_key"]))
    node.ledger.revoke_key(event, node.node_key.sign_bytes(canonical(event)))


def recover_keys(node: Node, member: Member, public_key_b64: str, label: str) -> str:
    """Operator-assisted recovery: a member who lost their device proves who they are in
    person; every key they had is revoked and the new device's key registered.

    A key that is already this member's live key (the same recovery sent twice) is kept
    and the others revoked: the recovery ends the same. Any other key registered before is
    refused before anything is revoked (else the member would be left with no key)."""
    new_key = signing_key_id(_public_key(public_key_b64))
    with node.ledger.reading() as conn:
        existing = ledger_repo.key_row(conn, new_key)
        keys = repo.devices_of(conn, member.id)
    if existing is not None and (
        existing["owner"] != member.account or existing["revoked_ms"] is not None
    ):
        raise Refusal(
            409,
            "key_exists",
            "This device key was registered before: the new device must make a new one.",
        )
    for key in keys:
        if key["revoked_ms"] is None and key["key_id"] != new_key:
            revoke_device_key(node, member, key["key_id"])
    if existing is not None:
        return new_key
    return add_device_key(node, member, public_key_b64, label or "recovered")


def device_keys(node: Node, member: Member) -> list[dict[str, Any]]:
    with node.ledger.reading() as conn:
        return [dict(row) for row in repo.devices_of(conn, member.id)]


# -- balance, history, sending -------------------------------------------------------------


def balance(node: Node, member: Member) -> int:
    _wallet(member)
    return node.ledger.balance(member.account)


def _wallet(member: Member) -> None:
    if not member.has_wallet:
        raise Refusal(403, "no_wallet", "Operators have no wallet.")


@dataclass(frozen=True)
class Movement:
    transfer_id: int
    kind: str
    amount: int  # signed: what it did to this wallet
    counterparty: str | None
    memo: str | None
    created_ms: int


def history(
    node: Node, member: Member, *, before: int | None, limit: int, incoming: bool = False
) -> list[Movement]:
    """A page of the member's movements, newest first (`incoming`: only credits)."""
    _wallet(member)
    with node.ledger.reading() as conn:
        rows = repo.history(conn, member.account, before=before, limit=limit, incoming=incoming)
    return [_movement(row, member.account) for row in rows]


def _movement(row: Any, account: str) -> Movement:
    order = json.loads(row["order_json"])
    other = order.get("to") if order.get("from") == account else order.get("from")
    counterparty = other.removeprefix("member:") if isinstance(other, str) else None
    return Movement(
        row["id"], row["kind"], row["amount"], counterparty, order.get("memo"), row["created_ms"]
    )


def send(node: Node, member: Member, envelope: SignedOrder) -> Posted:
    """Post a payment signed by one of the member's device keys (idempotent on its id)."""
    check_payment(node, member, envelope)
    return post(node, envelope)


async def send_async(node: Node, member: Member, envelope: SignedOrder) -> Posted:
    """`send` for the event loop: the request waits for its batch to commit without
    holding a worker thread. The checks run here: a signature check costs less than a
    thread hop, and the database is read only at the first sight of a key or recipient."""
    check_payment(node, member, envelope)
    if node.poster is None:
        return await run_in_threadpool(node.ledger.transfer, envelope)
    # The poster's thread settles its future; the outcome is handed to this loop once. A
    # request given up (timeout, client gone) drops its own future only, never the
    # poster's. (asyncio's wrap_future, shield and wait_for did the same at ~4% of a
    # payment's CPU.)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Posted] = loop.create_future()
    node.poster.submit(envelope).add_done_callback(
        lambda done: loop.call_soon_threadsafe(_settle, answer, done)
    )
    timer = loop.call_later(POST_TIMEOUT_S, _settle_late, answer)
    try:
        return await answer
    finally:
        timer.cancel()


def _settle(answer: asyncio.Future[Posted], done: Future[Posted]) -> None:
    if answer.done():  # timed out or given up
        return
    error = done.exception()
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(done.result())


def _settle_late(answer: asyncio.Future[Posted]) -> None:
    if not answer.done():  # maybe posted later: the same order sent again says so, once
        answer.set_exception(NodeBusy("the order was not posted in time; send it again"))


def check_payment(node: Node, member: Member, envelope: SignedOrder) -> None:
    """What the wallet API asks of a payment before the ledger judges it."""
    _wallet(member)
    order = envelope.order
    if order.get("kind") not in MEMBER_KINDS_SENT:
        raise Refusal(422, "bad_kind", "Only payments can be sent from a wallet here.")
    if order.get("from") != member.account:
        raise Refusal(403, "not_your_wallet", "An order can only spend from your own wallet.")
    if member.frozen_reason:
        raise Refusal(
            403, "wallet_frozen", "Your wallet is frozen: {reason}", reason=member.frozen_reason
        )
    recipient = order.get("to")
    if isinstance(recipient, str) and not _holds_a_wallet(node, recipient):
        raise Refusal(404, "unknown_member", "There is no member with this id.")


def _holds_a_wallet(node: Node, account: str) -> bool:
    """Is this account a resident's or a merchant's (other accounts: the ledger judges)?
    Remembered once true: members are never removed nor change role, and a payment should
    not cost one more database read."""
    if not account.startswith("member:"):
        return True
    known = node.extras.setdefault("wallet_accounts", set())
    assert isinstance(known, set)
    if account not in known:
        with node.ledger.reading() as conn:
            found = repo.member(conn, account.removeprefix("member:"))
        if found is None or found["role"] not in ("resident", "merchant"):
            return False
        known.add(account)
    return True


def post(node: Node, envelope: SignedOrder) -> Posted:
    """Post through the group-commit poster when it runs (the server), else directly."""
    if node.poster is not None:
        return node.poster.post(envelope)
    return node.ledger.transfer(envelope)


def receipt(
    node: Node, member: Member | None, transfer_id: int, tree_size: int | None = None
) -> dict[str, Any]:
    """A transfer's receipt, for the members it touched (operators see every receipt):
    against the latest checkpoint, or the one of `tree_size` leaves a member kept."""
    with node.ledger.reading() as conn:
        allowed = member is not None and (
            member.role in ("treasurer", "admin")
            or (member.has_wallet and repo.touches(conn, transfer_id, member.account))
        )
        if not allowed:
            raise _unknown_transfer()
        try:
            found = proofs.receipt(conn, transfer_id, tree_size)
        except UnknownTransfer:
            raise _unknown_transfer() from None
        except proofs.NoCheckpoint as exc:
            raise _no_checkpoint_of(exc.tree_size) from None
        except proofs.NotInTree as exc:
            raise Refusal(
                409,
                "not_in_that_tree",
                "This transfer entered the log after its first {size} entries: "
                "ask for a later checkpoint.",
                size=exc.tree_size,
            ) from None
        except proofs.LogDamaged as exc:
            raise log_damaged(exc) from None
    if found is None:
        raise Refusal(
            409, "not_sealed_yet", "This transfer is not in the signed log yet; try in a second."
        )
    return {
        "transfer_id": found.transfer_id,
        "leaf": found.leaf.decode(),
        "index": found.index,
        "tree_size": found.tree_size,
        "proof": [b64(h) for h in found.proof],
        "checkpoint": found.checkpoint,
    }


def _unknown_transfer() -> Refusal:
    return Refusal(404, "unknown_transfer", "There is no such transfer in your history.")


def _no_checkpoint_of(size: int) -> Refusal:
    return Refusal(
        404, "unknown_checkpoint", "The log has no checkpoint of {size} entries.", size=size
    )


def log_damaged(exc: proofs.LogDamaged) -> Refusal:
    """What a reader of a proof is told when the stored tree cannot give it (logged once)."""
    log.error("a proof of the log was asked for, but the stored log is damaged: %s", exc)
    return Refusal(
        503,
        "log_damaged",
        "The log's stored tree is damaged, so no proof can be given now. "
        "The treasurer should run `sou audit`.",
    )


def consistency(node: Node, old_size: int, new_size: int) -> dict[str, Any]:
    """The RFC 6962 proof that the log of `new_size` entries extends the one of `old_size`,
    for sizes up to the latest checkpoint."""
    if old_size > new_size:
        raise Refusal(
            422,
            "bad_tree_sizes",
            "The first size ({old}) must not be larger than the second ({new}).",
            old=old_size,
            new=new_size,
        )
    with node.ledger.reading() as conn:
        try:
            proof = proofs.consistency(conn, old_size, new_size)
        except proofs.BeyondLog as exc:
            raise Refusal(
                404,
                "beyond_the_log",
                "The log has signed {latest} entries so far, not {size}.",
                latest=exc.latest,
                size=exc.tree_size,
            ) from None
        except proofs.LogDamaged as exc:
            raise log_damaged(exc) from None
    return {"from": old_size, "to": new_size, "proof": [b64(h) for h in proof]}


def checkpoint_of_size(node: Node, tree_size: int) -> str:
    """The signed note the node published when its log held `tree_size` entries."""
    with node.ledger.reading() as conn:
        note = ledger_repo.checkpoint_note(conn, tree_size)
    if note is None:
        raise _no_checkpoint_of(tree_size)
    return note


def checkpoints(node: Node, *, before: int | None, limit: int) -> list[dict[str, Any]]:
    """A page of the node's checkpoints, newest first (sizes below `before`)."""
    with node.ledger.reading() as conn:
        return [dict(row) for row in ledger_repo.checkpoints_before(conn, before, limit)]


def transfer_by_client_id(node: Node, member: Member, client_id: str) -> dict[str, Any]:
    """What became of an order the member's device sent with this client id (its `id`):
    the transfer it made, and whether it is in the signed log yet. Only the member's own
    orders are found; anyone else's id is as unknown as an id never used."""
    _wallet(member)
    with node.ledger.reading() as conn:
        found = ledger_repo.transfers_by_client_id(conn, [(member.account, client_id)])
        stored = found.get((member.account, client_id))
        if stored is None:
            raise Refusal(
                404,
                "unknown_order",
                "No transfer was made from an order of yours with this id: the node has not "
                "posted it, and the same signed order can be sent again.",
            )
        postings = ledger_repo.postings_of(conn, [stored.id])[stored.id]
        sealed = ledger_repo.leaf_index(conn, stored.id) is not None
    return {
        "transfer_id": stored.id,
        "client_id": stored.client_id,
        "kind": stored.kind,
        "postings": postings,
        "created_ms": stored.created_ms,
        "sealed": sealed,
    }


def node_keys(node: Node) -> dict[str, Any]:
    """The keys that sign the log and operator actions, and the latest checkpoint."""
    with node.ledger.reading() as conn:
        latest = ledger_repo.latest_checkpoint(conn)
        keys = ledger_repo.active_operator_keys(conn)
    return {
        "origin": node.ledger.origin,
        "currency": node.ledger.chart.local,
        "keys": [
            {"owner": k["owner"], "key": k["key_id"], "public_key": b64(bytes(k["public_key"]))}
            for k in keys
        ],
        "checkpoint": None if latest is None else latest["note"],
        "tree_size": 0 if latest is None else int(latest["tree_size"]),
    }


# -- orders the node or an operator signs --------------------------------------------------


def sign_as(node: Node, owner: str, kind: str, client_id: str, **fields: Any) -> SignedOrder:
    """An order signed by the node (naming the rule) or by an operator's role key."""
    key = node.signing_key(owner)  # the log's key for `owner`, or KeysMismatch
    return key.sign(new_order(kind, key, node.ledger.origin, client_id=client_id, **fields))


def posted_or_existing(node: Node, owner: str, signed: SignedOrder) -> Posted | None:
    """Post an order whose client id names a unique event (a card payment, a cash receipt).
    If the same id was posted before with another nonce, the first one stands: None."""
    try:
        return post(node, signed)
    except LedgerError as exc:
        if exc.code == "idempotency_conflict":
            return None
        raise


def create_operator(
    node: Node,
    *,
    display_name: str,
    email: str,
    password: str,
    role: str,
    office: str | None = None,
) -> Member:
    """An operator: exchange office (with its till and role key), treasurer or admin."""
    from ledger.chart import office_cash
    from runtime.node import add_operator

    if (role == "office") != (office is not None):
        raise Refusal(422, "bad_office", "An exchange-office operator works at one office.")
    person = {"display_name": display_name, "role": role, "office": office}
    member_id = _record_person(node, person, email, password)
    if office is not None:
        with node.ledger.reading() as conn:
            opened = ledger_repo.accounts_by_code(conn, [office_cash(office)], node.ledger.chart)
        if not opened:  # a new office: its till and the role key that signs its receipts
            node.ledger.open_account(office_cash(office))
            add_operator(node, f"role:office:{office}")
    return get_member(node, member_id)


def renew_membership(node: Node, member_id: str, until: date) -> Member:
    get_member(node, member_id)
    with node.engine.begin() as conn:
        repo.update_member(conn, member_id, membership_until=until)
    forget_principals(node)
    return get_member(node, member_id)
