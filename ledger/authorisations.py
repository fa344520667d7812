"""Collections: a shop takes a payment the customer authorised in advance.

The customer's device signs an *authorisation* (at most `cap` cents, from their account,
to one shop or any, until `expires`, used once: its `id`) and shows it as a QR code; the
shop's point of sale scans it and signs a `collection` order of the amount due, carrying
the authorisation and its signature. The ledger checks both signatures: the order's by a
key of the shop (`to`), the authorisation's by a key of the payer (`from`, an *endorsement*)
— neither can move the other's money alone. The authorisation's id is the collection's
one-time token: used once, whatever the shop sends again.

An authorisation is a flat JSON object signed over its RFC 8785 bytes, carried in the
order as base64url of those bytes (`auth`) with its signature (`auth_sig`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger import orders
from ledger.canonical import canonical, unb64
from ledger.errors import InvalidOrder

AUTH_FIELDS = frozenset(
    {"v", "node", "kind", "id", "key", "from", "to", "cap", "currency", "expires"}
)
MAX_AUTH = 1024  # bytes of an authorisation: a QR code a phone shows


@dataclass(frozen=True)
class Endorsement:
    """A second signature an order carries: by `key_id`, over `message`, whose key must
    belong to `owner`."""

    key_id: str
    message: bytes
    signature: bytes
    owner: str
    node: str


def authorisation(fields: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The authorisation an order carries, read and checked for form, and its bytes."""
    text = orders.text(fields, "auth", max_length=MAX_AUTH * 2)
    try:
        message = unb64(text)
        auth = json.loads(message)
    except ValueError:
        raise InvalidOrder("auth", "must be a base64url authorisation") from None
    if not isinstance(auth, dict) or len(message) > MAX_AUTH:
        raise InvalidOrder("auth", "must be a base64url authorisation")
    if canonical(auth) != message:
        raise InvalidOrder("auth", "must be in canonical form (RFC 8785)")
    extra = sorted(set(auth) - AUTH_FIELDS)
    if extra:
        raise InvalidOrder("auth", f"{extra[0]} is not a field of an authorisation")
    if auth.get("v") != 1 or auth.get("kind") != "authorisation":
        raise InvalidOrder("auth", "is not an authorisation")
    orders.matching(auth, "id", orders.CLIENT_ID, "1 to 64 letters, digits or _.:-")
    orders.matching(auth, "key", orders.TOKEN, "a key id")
    orders.integer(auth, "cap", minimum=1)
    orders.integer(auth, "expires", minimum=0)
    orders.text(auth, "node", max_length=200)
    orders.text(auth, "currency", max_length=8)
    return auth, message


def endorsement(fields: Mapping[str, Any]) -> Endorsement:
    """The payer's signature a collection carries, to check against their keys."""
    auth, message = authorisation(fields)
    try:
        signature = unb64(orders.text(fields, "auth_sig", max_length=100))
    except ValueError:
        raise InvalidOrder("auth_sig", "must be a base64url signature") from None
    if len(signature) != 64:
        raise InvalidOrder("auth_sig", "an Ed25519 signature is 64 bytes")
    return Endorsement(auth["key"], message, signature, str(auth["from"]), auth["node"])


def collection_once(payer: str, auth_id: str) -> str:
    return f"auth:{payer}:{auth_id}"


def check_collection(fields: Mapping[str, Any], cents: int, payer: str, payee: str) -> str:
    """What the collection may take under its authorisation; its one-time token."""
    auth, _ = authorisation(fields)
    if auth.get("from") != payer:
        raise InvalidOrder("auth", "was signed for another account")
    if "to" in auth and auth["to"] != payee:
        raise InvalidOrder("auth", "was given to another shop")
    if auth.get("currency") != fields.get("currency"):
        raise InvalidOrder("auth", "is in another currency")
    if cents > auth["cap"]:
        raise InvalidOrder("amount", f"must be at most the authorised {auth['cap']}")
    # The order lives no longer than the authorisation: posting refuses an expired order.
    if orders.integer(fields, "expires", minimum=0) > auth["expires"]:
        raise InvalidOrder("expires", "must not outlive the authorisation")
    return collection_once(payer, auth["id"])
