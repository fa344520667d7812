"""Codes customers show, and what they pay with where there is no network.

A customer's phone signs an authorisation (up to a cap, for a few minutes, once) and the
node keeps it under a short code the shop scans or types; the shop then signs a collection
carrying it, and the ledger checks both signatures. The collection uses the authorisation's
one-time token, so a code is collected at most once.

Offline, a member pays from an allowance set aside beforehand (`escrow:offline:<id>`): the
node signs a certificate naming one device key and a cap, which a shop without network checks
with the node's public key alone. The allowance comes back to the wallet only once no
certificate of it is live.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from ledger.authorisations import Endorsement, authorisation, collection_once, endorsement
from ledger.canonical import b64
from ledger.errors import InvalidOrder, LedgerError, RevokedKey
from ledger.operations import NODE, allowance_escrow
from ledger.posting import Posted
from ledger.signing import SignedOrder
from members.access import Member
from members.errors import AMOUNT_TOO_LARGE, BAD_KIND, NOT_YOUR_WALLET, WALLET_FROZEN
from members.shops import names_of
from pos import repository as counter_repo
from pos.codes import repository as repo
from pos.codes.errors import (
    AUTHORISATION_EXPIRED,
    AUTHORISATION_USED,
    BAD_AUTHORISATION,
    CERTIFICATE_LIVE,
    NO_ALLOWANCE,
    NOT_YOUR_DEVICE,
    OTHER_SHOP,
    OVER_CAP,
    UNKNOWN_CODE,
)
from pos.service import channel, now_ms, open_shop
from runtime.links import sign_link
from runtime.signing import post, sign_as
from web.refusals import Money

if TYPE_CHECKING:
    from runtime.node import Node

# -- codes customers show: authorisations the shop collects ------------------------------------

AUTH_TTL_S = 120  # what a wallet asks: the code on the phone lives two minutes...
MAX_AUTH_TTL_S = 300  # ...and at most five
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O nor 1/I: typed from a screen
CODE_LENGTH = 8


def wallet_channel(member_id: str) -> str:
    """The notices channel of a wallet waiting for its code to be used."""
    return f"wallet:{member_id}"


@dataclass(frozen=True)
class Presented:
    """A code a customer shows: their signed authorisation, and whether a shop used it."""

    code: str
    payer_id: str
    payer_name: str
    auth_id: str
    auth: str
    auth_sig: str
    cap: int
    shop_id: str | None
    created_ms: int
    expires_ms: int
    transfer_id: int | None = None  # the collection that used it
    collected: int | None = None
    collected_by: str | None = None  # the shop's name

    def state(self, now: int) -> str:
        if self.transfer_id is not None:
            return "used"
        return "expired" if now >= self.expires_ms else "open"


def _auth_fields(auth: str, auth_sig: str) -> tuple[dict[str, Any], Endorsement]:
    try:
        endorsed = endorsement({"auth": auth, "auth_sig": auth_sig})
        fields, _ = authorisation({"auth": auth})
    except InvalidOrder as exc:
        raise BAD_AUTHORISATION(reason=exc.message) from None
    return fields, endorsed


def present(node: Node, payer: Member, auth: str, auth_sig: str) -> Presented:
    """Keep a customer's signed authorisation under a short code for a shop to collect."""
    fields, endorsed = _auth_fields(auth, auth_sig)
    now = now_ms()
    if fields["from"] != payer.account or endorsed.owner != payer.account:
        raise NOT_YOUR_WALLET()
    if payer.frozen_reason:
        raise WALLET_FROZEN(reason=payer.frozen_reason)
    if fields["currency"] != node.ledger.chart.local:
        raise BAD_AUTHORISATION(reason=f"the currency is {node.ledger.chart.local}")
    if fields["cap"] > node.settings.max_amount:
        raise AMOUNT_TOO_LARGE(maximum=Money(node.settings.max_amount, node.ledger.chart.local))
    if not now < fields["expires"] * 1000 <= now + MAX_AUTH_TTL_S * 1000:
        raise BAD_AUTHORISATION(reason="it must expire within five minutes")
    shop = None
    if "to" in fields:
        shop = open_shop(node, str(fields["to"]).removeprefix("member:"))
    node.ledger.check_endorsement(endorsed)  # unknown key, bad signature: the ledger's refusal
    with node.ledger.reading() as conn:
        if repo.key_revoked(conn, endorsed.key_id):
            raise RevokedKey(
                "the key that signed this authorisation is revoked", key=endorsed.key_id
            )
    for _ in range(5):  # 40 bits: a clash among codes of two minutes is rare, never twice
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        try:
            with node.engine.begin() as conn:
                repo.insert_presented(
                    conn,
                    {
                        "code": code,
                        "payer_id": payer.id,
                        "auth_id": fields["id"],
                        "auth": auth,
                        "auth_sig": auth_sig,
                        "cap": fields["cap"],
                        "shop_id": shop.member_id if shop else None,
                        "created_ms": now,
                        "expires_ms": fields["expires"] * 1000,
                    },
                )
            return find_presented(node, code)
        except IntegrityError as exc:
            with node.ledger.reading() as conn:
                if repo.presented_by_auth(conn, payer.id, fields["id"]) is not None:
                    raise BAD_AUTHORISATION(reason="this authorisation was shown before") from exc
    raise AssertionError("no free payment code")  # pragma: no cover


def find_presented(node: Node, code: str) -> Presented:
    code = code.strip().upper().replace(" ", "").replace("-", "")
    with node.ledger.reading() as conn:
        row = repo.presented(conn, code) if len(code) == CODE_LENGTH else None
        if row is None:
            raise UNKNOWN_CODE()
        used = counter_repo.transfer_using(
            conn, collection_once(f"member:{row['payer_id']}", row["auth_id"])
        )
        names = names_of(conn, [row["payer_id"]])
        shop = None
        if used is not None:
            shop_id = str(json.loads(used["order_json"])["to"]).removeprefix("member:")
            shop = names_of(conn, [shop_id]).get(shop_id)
    return Presented(
        row["code"],
        row["payer_id"],
        names.get(row["payer_id"], row["payer_id"]),
        row["auth_id"],
        row["auth"],
        row["auth_sig"],
        row["cap"],
        row["shop_id"],
        row["created_ms"],
        row["expires_ms"],
        used["id"] if used else None,
        json.loads(used["order_json"])["amount"] if used else None,
        shop,
    )


def presented_to(node: Node, merchant: Member, code: str) -> Presented:
    """A code as the shop that scanned it sees it: open, and for this shop or any."""
    open_shop(node, merchant.id)
    found = find_presented(node, code)
    state = found.state(now_ms())
    if state == "used":
        raise AUTHORISATION_USED()
    if state == "expired":
        raise AUTHORISATION_EXPIRED()
    if found.shop_id is not None and found.shop_id != merchant.id:
        raise OTHER_SHOP()
    return found


def collect(node: Node, merchant: Member, envelope: SignedOrder) -> Posted:
    """Post the shop's signed collection under the customer's authorisation."""
    shop = open_shop(node, merchant.id)
    order = envelope.order
    if order.get("kind") != "collection":
        raise BAD_KIND()
    if order.get("to") != shop.account:
        raise NOT_YOUR_WALLET()
    fields, _ = _auth_fields(str(order.get("auth", "")), str(order.get("auth_sig", "")))
    amount = order.get("amount")
    if isinstance(amount, int) and amount > fields["cap"]:
        raise OVER_CAP(cap=Money(fields["cap"], node.ledger.chart.local))
    if "to" in fields and fields["to"] != shop.account:
        raise OTHER_SHOP()
    if fields["expires"] * 1000 <= now_ms():
        raise AUTHORISATION_EXPIRED()
    try:
        posted = post(node, envelope)
    except LedgerError as exc:
        if exc.code == "already_used":
            raise AUTHORISATION_USED() from None
        raise
    payer = str(fields["from"]).removeprefix("member:")
    node.notices.publish(channel(shop.member_id), str(posted.transfer_id))
    node.notices.publish(wallet_channel(payer), str(posted.transfer_id))
    return posted


# -- offline allowances ------------------------------------------------------------------------

CERT_TTL_S = 3 * 86_400  # a shop offline for a weekend still sends what it took


@dataclass(frozen=True)
class Allowance:
    """A member's units set aside for shops that cannot reach the node, and the certificate
    a device shows them (None when nothing is set aside)."""

    balance: int
    certificate: dict[str, Any] | None
    live_until_ms: int | None


def _allowance(node: Node, member: Member) -> str:
    code = allowance_escrow(member.account)
    node.ledger.ensure_accounts([code])
    return code


def hold_allowance(node: Node, member: Member, envelope: SignedOrder) -> Posted:
    """Set units aside for offline payments: the member's signed `allowance_hold`."""
    order = envelope.order
    if order.get("kind") != "allowance_hold":
        raise BAD_KIND()
    if order.get("from") != member.account:
        raise NOT_YOUR_WALLET()
    if member.frozen_reason:
        raise WALLET_FROZEN(reason=member.frozen_reason)
    _allowance(node, member)
    return post(node, envelope)


def certify(node: Node, member: Member, key_id: str) -> Allowance:
    """A certificate, signed by the node, that this device of the member may spend up to
    the allowance set aside now, until CERT_TTL_S from now: what a shop offline checks
    with the node's public key alone."""
    code = _allowance(node, member)
    with node.ledger.reading() as conn:
        key = repo.key_of(conn, key_id) if len(key_id) <= 32 else None
    if key is None or key["owner"] != member.account or key["revoked_ms"] is not None:
        raise NOT_YOUR_DEVICE()
    balance = node.ledger.balance(code)
    if balance <= 0:
        raise NO_ALLOWANCE()
    now = now_ms()
    fields: dict[str, str | int] = {
        "id": secrets.token_urlsafe(9),
        "member": member.id,
        "name": member.display_name[:60],
        "key": key_id,
        "public_key": b64(bytes(key["public_key"])),
        "cap": balance,
        "expires": now // 1000 + CERT_TTL_S,
    }
    with node.engine.begin() as conn:
        repo.insert_certificate(
            conn,
            {
                "id": fields["id"],
                "member_id": member.id,
                "key_id": key_id,
                "cap": balance,
                "created_ms": now,
                "expires_ms": int(fields["expires"]) * 1000,
            },
        )
    certificate = {**fields, "sig": sign_link(node, "allowance", fields)}
    return Allowance(balance, certificate, int(fields["expires"]) * 1000)


def allowance_of(node: Node, member: Member) -> Allowance:
    code = _allowance(node, member)
    with node.ledger.reading() as conn:
        until = repo.live_certificate_until(conn, member.id, now_ms())
    return Allowance(node.ledger.balance(code), None, until)


def release_allowance(node: Node, member: Member) -> Allowance:
    """Give the allowance back to the wallet, once no certificate of it is live (a shop
    offline may hold payments against it until the last one expires)."""
    found = allowance_of(node, member)
    if found.live_until_ms is not None:
        moment = datetime.fromtimestamp(
            found.live_until_ms / 1000, ZoneInfo(node.settings.timezone)
        )
        raise CERTIFICATE_LIVE(until=moment.strftime("%Y-%m-%d %H:%M"))
    if found.balance > 0:
        signed = sign_as(
            node,
            NODE,
            "allowance_release",
            f"allowance-release-{member.id}-{now_ms()}",
            rule="pos.allowance_release",
            **{"from": allowance_escrow(member.account)},
            to=member.account,
            amount=found.balance,
            currency=node.ledger.chart.local,
        )
        post(node, signed)
    return allowance_of(node, member)
