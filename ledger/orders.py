"""Reading an order: the fields every order carries, and typed readers for the rest.

Orders are JSON objects. Amounts are integers of cents: a float, a string, a boolean or a
number beyond the limit is refused with `InvalidOrder`, never coerced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.canonical import canonical
from ledger.chart import kind_of
from ledger.errors import InvalidOrder
from ledger.text import HIDDEN_REASON, hidden_character

# I-JSON (RFC 7493) integers: what every JSON client can carry exactly.
MAX_SAFE_INTEGER = 2**53 - 1
CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
RULE = re.compile(r"^[a-z][a-z0-9_.]{0,47}$")
COMMON_FIELDS = frozenset({"v", "node", "kind", "id", "key", "nonce", "expires", "memo", "rule"})
MAX_MEMO = 280


@dataclass(frozen=True, slots=True)
class Order:
    """A well-formed order and its canonical bytes. Not yet checked against keys or balances."""

    fields: Mapping[str, Any]
    canonical: bytes
    signature: bytes = field(repr=False)
    kind: str
    client_id: str
    key_id: str
    nonce: str
    expires: int

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


def read_common(fields: Mapping[str, Any], signature: bytes) -> Order:
    """Check the fields every order has and compute its canonical bytes."""
    if not isinstance(fields, Mapping):
        raise InvalidOrder("order", "must be a JSON object")
    if fields.get("v") != 1 or isinstance(fields.get("v"), bool):
        raise InvalidOrder("v", "only version 1 orders exist")
    text(fields, "node", max_length=200)
    kind = text(fields, "kind", max_length=32)
    client_id = matching(fields, "id", CLIENT_ID, "1 to 64 letters, digits or _.:-")
    key = matching(fields, "key", TOKEN, "a key id")
    nonce = matching(fields, "nonce", TOKEN, "8 to 64 base64url characters")
    expires = integer(fields, "expires", minimum=0)
    text(fields, "memo", max_length=MAX_MEMO, required=False)
    if "rule" in fields:
        matching(fields, "rule", RULE, "a rule name")
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise InvalidOrder("sig", "an Ed25519 signature is 64 bytes")
    try:
        data = canonical(fields)
    except ValueError as exc:
        raise InvalidOrder("order", str(exc)) from exc
    return Order(fields, data, signature, kind, client_id, key, nonce, expires)


def only_fields(order: Order, allowed: frozenset[str]) -> None:
    """Refuse unknown fields: everything signed must mean something."""
    extra = sorted(set(order.fields) - COMMON_FIELDS - allowed)
    if extra:
        raise InvalidOrder(extra[0], f"is not a field of a {order.kind} order")


def integer(
    fields: Mapping[str, Any], name: str, *, minimum: int = 1, maximum: int = MAX_SAFE_INTEGER
) -> int:
    value = fields.get(name)
    if value is None:
        raise InvalidOrder(name, "is missing")
    # bool is an int in Python; a float such as 12.5 or 12.0 is never an amount.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOrder(name, "must be a whole number (of cents for an amount)")
    if value < minimum:
        raise InvalidOrder(name, f"must be at least {minimum}")
    if value > maximum:
        raise InvalidOrder(name, f"must be at most {maximum}")
    return value


def amount(fields: Mapping[str, Any], name: str = "amount", *, maximum: int) -> int:
    """A positive amount in cents, at most `maximum`."""
    return integer(fields, name, minimum=1, maximum=min(maximum, MAX_SAFE_INTEGER))


def text(fields: Mapping[str, Any], name: str, *, max_length: int, required: bool = True) -> str:
    value = fields.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise InvalidOrder(name, "must be non-empty text")
    if len(value) > max_length:
        raise InvalidOrder(name, f"must be at most {max_length} characters")
    if hidden_character(value) is not None:  # a memo must read as what it holds
        raise InvalidOrder(name, HIDDEN_REASON)
    return value


def matching(fields: Mapping[str, Any], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidOrder(name, f"must be {what}")
    return value


def account(fields: Mapping[str, Any], name: str) -> str:
    """An account code of the chart (existence is checked when posting)."""
    value = fields.get(name)
    if not isinstance(value, str):
        raise InvalidOrder(name, "must be an account code")
    try:
        kind_of(value)
    except InvalidOrder as exc:
        raise InvalidOrder(name, f"{value!r} is not an account code of this ledger") from exc
    return value


def transfer_ref(fields: Mapping[str, Any], name: str = "ref") -> int:
    return integer(fields, name, minimum=1)
