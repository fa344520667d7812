"""Ed25519 keys and signed orders (DESIGN.md, must 6).

A device, an operator or the node holds a `SigningKey`; the ledger knows only public keys,
registered per owner. An order is a JSON object; its signature covers its RFC 8785 bytes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nacl.exceptions
import nacl.signing

from ledger.canonical import b64, canonical, sha256, unb64

ORDER_VERSION = 1
DEFAULT_TTL_S = 300


def key_id(public_key: bytes) -> str:
    """A short, stable name for a public key: 16 base64url characters of its SHA-256."""
    return b64(sha256(public_key)[:12])


class SigningKey:
    """An Ed25519 secret key. Its repr never shows the secret."""

    __slots__ = ("_key", "key_id", "public_key")

    def __init__(self, seed: bytes) -> None:
        self._key = nacl.signing.SigningKey(seed)
        self.public_key = bytes(self._key.verify_key)
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(32))

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    @property
    def nacl_key(self) -> nacl.signing.SigningKey:
        return self._key

    def sign_bytes(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def sign(self, order: Mapping[str, Any]) -> SignedOrder:
        return SignedOrder(dict(order), self.sign_bytes(canonical(order)))

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


@dataclass(frozen=True)
class SignedOrder:
    """An order and its detached signature, as a client sends it."""

    order: dict[str, Any]
    signature: bytes = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"order": self.order, "sig": b64(self.signature)}

    @classmethod
    def from_json(cls, envelope: Mapping[str, Any]) -> SignedOrder:
        """Read `{"order": {...}, "sig": "<base64url>"}`; ValueError if it is not that shape."""
        order, sig = envelope.get("order"), envelope.get("sig")
        if not isinstance(order, dict) or not isinstance(sig, str):
            raise ValueError('a signed order is {"order": {...}, "sig": "..."}')
        return cls(order, unb64(sig))


def new_order(
    kind: str,
    key: SigningKey,
    node: str,
    *,
    client_id: str | None = None,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Fill the fields every order carries: version, node, kind, client id, key, nonce, expiry."""
    issued = time.time() if now is None else now
    return {
        "v": ORDER_VERSION,
        "node": node,
        "kind": kind,
        "id": client_id or str(uuid.uuid4()),
        "key": key.key_id,
        "nonce": b64(os.urandom(16)),
        "expires": int(issued) + ttl_s,
        **{k: v for k, v in fields.items() if v is not None},
    }
