"""Links the node signs: what its QR codes carry (DESIGN.md, "QR codes").

A link is an `https://` URL to the node whose query holds a few fields and the node key's
Ed25519 signature over them, so that a wallet, a POS offline or anyone with the node's
public key can tell it was made by this node and not altered. The signature covers the
canonical JSON (RFC 8785) of the fields with the link's kind and the node's log origin:
a link of one kind, or of another node, never passes for another.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import nacl.bindings
import nacl.exceptions

from ledger.canonical import b64, canonical, unb64
from ledger.operations import NODE
from ledger.signing import SigningKey

if TYPE_CHECKING:
    from runtime.node import Node

MAX_FIELD = 200  # characters of one field: a link stays a small QR code


class LinkRefused(Exception):
    """A link that is not this node's, or no longer good. `reason` names why: malformed,
    altered (bad signature), expired, or another node's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signed_fields(node: Node, kind: str, fields: Mapping[str, str | int]) -> bytes:
    return canonical({**fields, "kind": kind, "node": node.ledger.origin})


def sign_link(node: Node, kind: str, fields: Mapping[str, str | int]) -> str:
    """The signature (base64url) of the node key over a link's fields."""
    return _signature(node.signing_key(NODE), signed_fields(node, kind, fields))


# Ed25519 signatures are deterministic: the same key over the same bytes signs the same. A
# counter shows an invoice's link when it makes it and again each time it reads it back.
@functools.lru_cache(maxsize=1024)
def _signature(key: SigningKey, message: bytes) -> str:
    return b64(key.sign_bytes(message))


def check_link(
    node: Node,
    kind: str,
    fields: Mapping[str, Any],
    signature: str,
    *,
    now_s: float | None = None,
) -> None:
    """Raise LinkRefused unless the node key signed these fields for `kind`, and the
    link's `expires` (seconds since the epoch), if it has one, is not past."""
    if not all(_plain(v) for v in fields.values()):
        raise LinkRefused("malformed")
    try:
        raw = unb64(signature)
        message = signed_fields(node, kind, fields)
    except (ValueError, TypeError):
        raise LinkRefused("malformed") from None
    if len(raw) != 64:
        raise LinkRefused("malformed")
    try:
        nacl.bindings.crypto_sign_open(raw + message, node.node_key.public_key)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise LinkRefused("altered") from None
    expires = fields.get("expires")
    if expires is not None and int(expires) < (time.time() if now_s is None else now_s):
        raise LinkRefused("expired")


def _plain(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 2**53
    return isinstance(value, str) and 0 < len(value) <= MAX_FIELD and value.isprintable()
