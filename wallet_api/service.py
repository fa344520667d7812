"""The rules of the wallet: balance, history, sending money, receipts and the log's proofs.
Endpoints stay thin; every decision is here. (Members, their sessions and keys:
`members/service.py`; orders the node signs itself: `runtime/signing.py`.)

The wallet's features write their own tables in short transactions of their own, never
around a ledger post: on SQLite one writer holds the database at a time, and the poster is
that writer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from ledger import proofs
from ledger import repository as ledger_repo
from ledger.canonical import b64
from ledger.chart import Kind, kind_of
from ledger.errors import InvalidOrder, UnknownTransfer
from ledger.operations import allowance_escrow
from ledger.posting import Posted
from ledger.signing import SignedOrder
from members.access import Member
from members.errors import BAD_KIND, NO_WALLET, NOT_YOUR_WALLET, UNKNOWN_MEMBER, WALLET_FROZEN
from members.service import find_member
from members.shops import names_of
from runtime.signing import post, post_async
from wallet_api import repository as repo
from wallet_api.errors import (
    BAD_TREE_SIZES,
    BEYOND_THE_LOG,
    INVOICE_AT_COUNTER,
    LOG_DAMAGED,
    NOT_IN_THAT_TREE,
    NOT_SEALED_YET,
    UNKNOWN_CHECKPOINT,
    UNKNOWN_ORDER,
    UNKNOWN_TRANSFER,
)
from web.i18n import DEFAULT, translations
from web.refusals import Refusal

if TYPE_CHECKING:
    from runtime.node import Node

log = logging.getLogger(__name__)

MEMBER_KINDS_SENT = frozenset({"payment"})  # what a wallet may post through the API


# -- balance, history, sending -------------------------------------------------------------


def balance(node: Node, member: Member) -> int:
    _wallet(member)
    return node.ledger.balance(member.account)


def _wallet(member: Member) -> None:
    if not member.has_wallet:
        raise NO_WALLET()


@dataclass(frozen=True)
class Movement:
    transfer_id: int
    kind: str
    amount: int  # signed: what it did to this wallet
    counterparty: str | None  # a member's id, else the other account's code
    memo: str | None
    created_ms: int
    # As people know the other side: a shop's trade name, a member's name, what an escrow
    # is for ("AMAP · Légumes de saison"); None where it has no name a resident reads.
    counterparty_name: str | None = None


def history(
    node: Node,
    member: Member,
    *,
    before: int | None,
    limit: int,
    incoming: bool = False,
    lang: str = DEFAULT,
) -> list[Movement]:
    """A page of the member's movements, newest first (`incoming`: only credits), each
    naming the other party as people know them, in `lang`."""
    _wallet(member)
    with node.ledger.reading() as conn:
        rows = repo.history(conn, member.account, before=before, limit=limit, incoming=incoming)
        found = [(row, json.loads(row["order_json"])) for row in rows]
        others = [_other_party(order, member.account) for _, order in found]
        names = _account_names(node, conn, member, {o for o in others if o}, lang)
    return [
        _movement(row, order, other, names.get(other or ""))
        for (row, order), other in zip(found, others, strict=True)
    ]


def _other_party(order: dict[str, Any], account: str) -> str | None:
    other = order.get("to") if order.get("from") == account else order.get("from")
    return other if isinstance(other, str) else None


def _movement(row: Any, order: dict[str, Any], other: str | None, name: str | None) -> Movement:
    counterparty = other.removeprefix("member:") if other else None
    return Movement(
        row["id"],
        row["kind"],
        row["amount"],
        counterparty,
        order.get("memo"),
        row["created_ms"],
        name,
    )


# How a member reads the escrows of the node's own rules (`ledger.operations`: a member's
# offline allowance, a disputed card top-up's hold): msgids, French in wallet.po.
ESCROW_LABELS = {
    "offline": "your offline allowance",
    "card": "the card dispute's hold",
}


def account_names(
    node: Node, member: Member, codes: Iterable[str], lang: str = DEFAULT
) -> dict[str, str]:
    """How `member` reads these accounts (a receipt's payer and payee), in `lang`; those
    without a name a resident reads are left out."""
    with node.ledger.reading() as conn:
        return _account_names(node, conn, member, set(codes), lang)


def _account_names(
    node: Node, conn: Connection, member: Member, codes: set[str], lang: str
) -> dict[str, str]:
    """How `member` reads these accounts, in `lang`: a member by their name (a shop by its
    trade name); the member's own offline allowance as such, another's (a customer's, for
    a shop) by its owner's name; a card dispute's hold; a plugin's escrow by what the
    plugin says it is for. Accounts left without a name are left out: a page shows a
    resident no account code."""
    holders = {code: holder for code in codes if (holder := _holder(code))}
    people = names_of(conn, set(holders.values()))
    names = {code: people[holder] for code, holder in holders.items() if holder in people}
    said = translations(lang).gettext
    for code in codes:
        if code == allowance_escrow(member.account):
            names[code] = said(ESCROW_LABELS["offline"])
        elif _escrow_group(code) == "card":
            names[code] = said(ESCROW_LABELS["card"])
    plugins_own = sorted(c for c in codes if _escrow_group(c) not in (None, *ESCROW_LABELS))
    return names | _escrow_names(node, conn, plugins_own, lang)


def _holder(code: str) -> str | None:
    """The member whose name names an account: a member's own, or their offline allowance."""
    if code.startswith("member:"):
        return code.removeprefix("member:")
    if _escrow_group(code) == "offline":
        return code.split(":")[2]
    return None


def _escrow_group(code: str) -> str | None:
    """Whose escrow an account is (`escrow:<group>:...`: a plugin's name, or one of the
    node's own rules); None for an account that is not an escrow."""
    try:
        return code.split(":")[1] if kind_of(code) is Kind.ESCROW else None
    except InvalidOrder:
        return None


def _escrow_names(node: Node, conn: Connection, codes: list[str], lang: str) -> dict[str, str]:
    """What the plugins holding these escrows say each is for (`sou_escrow_names`), all
    asked at once; a plugin's name for another plugin's escrow is not taken."""
    if not codes:
        return {}
    wanted = set(codes)
    names: dict[str, str] = {}
    for plugin, said in node.plugins.each("sou_escrow_names", conn=conn, codes=codes, lang=lang):
        own = f"escrow:{plugin.name}:"
        names |= {c: str(n) for c, n in said.items() if c in wanted and c.startswith(own)}
    return names


def send(node: Node, member: Member, envelope: SignedOrder) -> Posted:
    """Post a payment signed by one of the member's device keys (idempotent on its id)."""
    check_payment(node, member, envelope)
    return post(node, envelope)


async def send_async(node: Node, member: Member, envelope: SignedOrder) -> Posted:
    """`send` for the event loop: the request waits for its batch to commit without
    holding a worker thread. The checks run here: a signature check costs less than a
    thread hop, and the database is read only at the first sight of a key or recipient."""
    check_payment(node, member, envelope)
    return await post_async(node, envelope)


def check_payment(node: Node, member: Member, envelope: SignedOrder) -> None:
    """What the wallet API asks of a payment before the ledger judges it."""
    _wallet(member)
    order = envelope.order
    if order.get("kind") not in MEMBER_KINDS_SENT:
        raise BAD_KIND()
    if order.get("from") != member.account:
        raise NOT_YOUR_WALLET()
    if "invoice" in order:
        raise INVOICE_AT_COUNTER()
    if member.frozen_reason:
        raise WALLET_FROZEN(reason=member.frozen_reason)
    recipient = order.get("to")
    if isinstance(recipient, str) and not _holds_a_wallet(node, recipient):
        raise UNKNOWN_MEMBER()


def _holds_a_wallet(node: Node, account: str) -> bool:
    """Is this account a resident's or a merchant's (other accounts: the ledger judges)?
    Remembered once true: members are never removed nor change role, and a payment should
    not cost one more database read."""
    if not account.startswith("member:"):
        return True
    if account not in node.wallet_accounts:
        found = find_member(node, account.removeprefix("member:"))
        if found is None or not found.has_wallet:
            return False
        node.wallet_accounts.add(account)
    return True


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
            raise UNKNOWN_TRANSFER()
        try:
            found = proofs.receipt(conn, transfer_id, tree_size)
        except UnknownTransfer:
            raise UNKNOWN_TRANSFER() from None
        except proofs.NoCheckpoint as exc:
            raise UNKNOWN_CHECKPOINT(size=exc.tree_size) from None
        except proofs.NotInTree as exc:
            raise NOT_IN_THAT_TREE(size=exc.tree_size) from None
        except proofs.LogDamaged as exc:
            raise log_damaged(exc) from None
    if found is None:
        raise NOT_SEALED_YET()
    return {
        "transfer_id": found.transfer_id,
        "leaf": found.leaf.decode(),
        "index": found.index,
        "tree_size": found.tree_size,
        "proof": [b64(h) for h in found.proof],
        "checkpoint": found.checkpoint,
    }


def log_damaged(exc: proofs.LogDamaged) -> Refusal:
    """What a reader of a proof is told when the stored tree cannot give it (logged once)."""
    log.error("a proof of the log was asked for, but the stored log is damaged: %s", exc)
    return LOG_DAMAGED()


def consistency(node: Node, old_size: int, new_size: int) -> dict[str, Any]:
    """The RFC 6962 proof that the log of `new_size` entries extends the one of `old_size`,
    for sizes up to the latest checkpoint."""
    if old_size > new_size:
        raise BAD_TREE_SIZES(old=old_size, new=new_size)
    with node.ledger.reading() as conn:
        try:
            proof = proofs.consistency(conn, old_size, new_size)
        except proofs.BeyondLog as exc:
            raise BEYOND_THE_LOG(latest=exc.latest, size=exc.tree_size) from None
        except proofs.LogDamaged as exc:
            raise log_damaged(exc) from None
    return {"from": old_size, "to": new_size, "proof": [b64(h) for h in proof]}


def checkpoint_of_size(node: Node, tree_size: int) -> str:
    """The signed note the node published when its log held `tree_size` entries."""
    with node.ledger.reading() as conn:
        note = ledger_repo.checkpoint_note(conn, tree_size)
    if note is None:
        raise UNKNOWN_CHECKPOINT(size=tree_size)
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
            raise UNKNOWN_ORDER()
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
