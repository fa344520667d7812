"""Canonical bytes: what gets signed and hashed.

Signed orders and key events are RFC 8785 (JSON Canonicalization Scheme) bytes, produced by
the `rfc8785` library, so that any client in any language signs the same bytes the node checks.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON bytes of a JSON object."""
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:  # e.g. an integer beyond 2**53
        raise ValueError(str(exc)) from exc


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b64(data: bytes) -> str:
    """URL-safe base64 without padding: what orders, keys and receipts carry."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    """Decode URL-safe base64 with or without padding; ValueError on anything else."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url text")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ValueError("not base64url text") from exc
