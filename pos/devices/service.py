"""Pairing a device with a shop's counter: a tablet at the till that is not the merchant's
phone.

The merchant, signed in with their password, names a device and gets a pairing code (good
once, for ten minutes). The device sends the code with the public half of a key it made;
the node, in one step, uses the code up, registers the key as a *counter key* of the shop
(owner `counter:member:<id>`, signed by the node key: it signs the shop's refunds and
collections, never a payment out of its wallet) and opens a session of scope `pos` for the
device, which acts as a `pos` token does. Unpairing revokes the key and ends the session.

Writes to our own table run in short transactions of their own, never around a ledger
write: on SQLite one writer holds the database at a time.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import RowMapping

from ledger import repository as ledger_repo
from ledger.canonical import canonical
from ledger.chart import member_account
from ledger.operations import counter_of
from ledger.signing import key_id as key_id_of
from ledger.text import hidden_character
from members.access import (
    Member,
    close_counter_sessions,
    forget_principals,
    now_ms,
    open_session,
    token_hash,
)
from members.service import read_public_key
from members.shops import Shop
from pos import service as counter
from pos.devices import repository as repo
from pos.devices.errors import (
    BAD_DEVICE_LABEL,
    BAD_PAIRING_CODE,
    PAIRING_CODE_EXPIRED,
    PAIRING_CODE_USED,
    TOO_MANY_COUNTER_DEVICES,
    UNKNOWN_COUNTER_DEVICE,
    UNKNOWN_PAIRING_CODE,
)
from pos.devices.settings import COUNTER_SESSION_DAYS
from runtime.signing import node_key_event

if TYPE_CHECKING:
    from runtime.node import Node

PAIRING_TTL_S = 600
# Letters and digits nobody misreads on a screen (no 0/O, 1/I): 10 of them are 50 bits, far
# more than can be tried in ten minutes.
CODE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
MAX_COUNTER_DEVICES = 10
LABEL = re.compile(r"^[^\x00-\x1f\x7f]{1,80}$")


@dataclass(frozen=True)
class Device:
    """A device of the shop's counter, paired or waiting for its code to be used."""

    id: int
    label: str
    created_ms: int
    code_expires_ms: int
    key_id: str | None
    paired_ms: int | None

    @property
    def state(self) -> str:
        """waiting (its code not used yet), paired, or unfinished (its code used, its
        pairing cut short: removing it revokes whatever key was registered)."""
        if self.paired_ms is not None:
            return "paired"
        return "waiting" if self.key_id is None else "unfinished"

    @classmethod
    def from_row(cls, row: RowMapping) -> Device:
        return cls(
            row["id"],
            row["label"],
            row["created_ms"],
            row["code_expires_ms"],
            row["key_id"],
            row["paired_ms"],
        )


@dataclass(frozen=True)
class PairingCode:
    device: Device
    code: str  # as shown and typed: ABCDE-FGH23

    def link(self, origin: str) -> str:
        """What the code's QR shows: the pairing page, with the code."""
        return f"{origin}/pos/pair?code={self.code}"


@dataclass(frozen=True)
class Paired:
    """A device just paired: its shop, and the session it holds from now on."""

    device: Device
    shop: Shop
    token: str  # the session cookie's secret
    csrf: str
    days: int


def shown(code: str) -> str:
    """A code as people read it: ABCDEFGH23 → ABCDE-FGH23."""
    return f"{code[:5]}-{code[5:]}"


def normalised(text: str) -> str:
    """A code as typed (any case, spaces or dashes) as it is stored, or BAD_PAIRING_CODE."""
    code = re.sub(r"[\s-]", "", text).upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_LETTERS for c in code):
        raise BAD_PAIRING_CODE()
    return code


def session_days(node: Node) -> int:
    settings = node.plugin_settings("pos")
    return int(getattr(settings, "counter_session_days", COUNTER_SESSION_DAYS))


# -- the merchant's side -----------------------------------------------------------------------


def new_pairing_code(node: Node, merchant: Member, label: str) -> PairingCode:
    """Name a device of the counter and make the code it pairs with (shown once)."""
    label = label.strip()
    if not LABEL.match(label) or hidden_character(label) is not None:
        raise BAD_DEVICE_LABEL()
    counter.open_shop(node, merchant.id)  # only an approved shop takes payments
    code = "".join(secrets.choice(CODE_LETTERS) for _ in range(CODE_LENGTH))
    now = now_ms()
    expires = now + PAIRING_TTL_S * 1000
    row = {
        "member_id": merchant.id,
        "label": label,
        "code_hash": token_hash(code),
        "code_expires_ms": expires,
        "created_ms": now,
    }
    with node.engine.begin() as conn:
        live = repo.count_live(conn, merchant.id, now)
        if live >= MAX_COUNTER_DEVICES:
            raise TOO_MANY_COUNTER_DEVICES(count=live)
        device_id = repo.insert_device(conn, row)
    device = Device(device_id, label, now, expires, None, None)
    return PairingCode(device, shown(code))


def devices(node: Node, merchant: Member) -> list[Device]:
    """The shop's counter devices: paired, or waiting for their code to be used."""
    with node.ledger.reading() as conn:
        return [Device.from_row(r) for r in repo.devices_of(conn, merchant.id, now_ms())]


def remove(node: Node, merchant: Member, device_id: int) -> None:
    """Unpair a device (or withdraw its code): its key is revoked and its session ended,
    at once in this process, within two seconds in the others. Removing twice changes
    nothing."""
    with node.ledger.reading() as conn:
        row = repo.device(conn, device_id)
        key = ledger_repo.key_row(conn, row["key_id"]) if row and row["key_id"] else None
    if row is None or row["member_id"] != merchant.id:
        raise UNKNOWN_COUNTER_DEVICE()
    if row["removed_ms"] is not None:
        return
    # The key first: were the node stopped in between, the device is still listed, and
    # removing it again ends its session.
    if key is not None and key["revoked_ms"] is None:
        event = node_key_event(node, "revoke", key["owner"], bytes(key["public_key"]))
        node.ledger.revoke_key(event, node.node_key.sign_bytes(canonical(event)))
    with node.engine.begin() as conn:
        repo.mark_removed(conn, device_id, now_ms())
        if row["key_id"] is not None:
            close_counter_sessions(conn, row["key_id"])
    forget_principals(node)


# -- the device's side -------------------------------------------------------------------------


def waiting(node: Node, code_text: str) -> tuple[Device, Shop]:
    """The device and shop a code pairs with, if it may still be used; else the refusal
    saying why (unknown, used, expired)."""
    code = normalised(code_text)
    with node.ledger.reading() as conn:
        row = repo.by_code(conn, token_hash(code))
    _usable(row, now_ms())
    assert row is not None
    return Device.from_row(row), counter.open_shop(node, row["member_id"])


def _usable(row: RowMapping | None, now: int) -> None:
    if row is None or row["removed_ms"] is not None:
        raise UNKNOWN_PAIRING_CODE()
    if row["used_ms"] is not None:
        raise PAIRING_CODE_USED()
    if row["code_expires_ms"] <= now:
        raise PAIRING_CODE_EXPIRED(minutes=PAIRING_TTL_S // 60)


def pair(node: Node, code_text: str, public_key_b64: str) -> Paired:
    """Use a pairing code for the device holding `public_key_b64`'s private half: register
    it as a counter key of the shop and open the device's session. The code pairs one
    device, whatever races (a conditional UPDATE decides)."""
    public_key = read_public_key(public_key_b64)
    device, shop = waiting(node, code_text)
    key_id = key_id_of(public_key)
    with node.engine.begin() as conn:
        claimed = repo.claim(conn, device.id, key_id, now_ms())
        row = repo.device(conn, device.id)
    if not claimed:  # another device took it (or time ran out) since we looked
        _usable(row, now_ms())
        raise PAIRING_CODE_USED()
    try:
        owner = counter_of(member_account(shop.member_id))
        event = node_key_event(node, "register", owner, public_key)
        node.ledger.register_key(event, node.node_key.sign_bytes(canonical(event)))
    except BaseException:
        with node.engine.begin() as conn:
            repo.release(conn, device.id, key_id)
        raise
    days = session_days(node)
    with node.engine.begin() as conn:
        repo.mark_paired(conn, device.id, now_ms())
        token, csrf = open_session(conn, shop.member_id, days, scope="pos", key_id=key_id)
        row = repo.device(conn, device.id)
    assert row is not None
    return Paired(Device.from_row(row), shop, token, csrf, days)
