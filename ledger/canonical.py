"""Canonical bytes: what gets signed and hashed.

Signed orders and key events are RFC 8785 (JSON Canonicalization Scheme) bytes, produced by
the `rfc8785` library, so that any client in any language signs the same bytes the node checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import rfc8785

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
_SAFE = 2**53  # integers JSON carries exactly (I-JSON)
_compact = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON bytes of a JSON object.

    Orders and key events are flat objects of ASCII keys, strings, safe integers,
    booleans and nulls; for those, sorted compact JSON from the standard library is
    byte-for-byte RFC 8785 (tests check it against `rfc8785`) and several times faster,
    which matters on the payment path. Anything else goes through `rfc8785` itself.
    """
    if _flat(obj):
        try:
            return _compact(obj).encode()
        except UnicodeEncodeError:  # a lone surrogate: let rfc8785 refuse it
            pass
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:  # e.g. an integer beyond 2**53
        raise ValueError(str(exc)) from exc


def _flat(obj: Mapping[str, Any]) -> bool:
    if type(obj) is not dict:
        return False
    for key, value in obj.items():
        # RFC 8785 sorts keys by UTF-16 code units; for ASCII that is Python's order.
        if type(key) is not str or not key.isascii():
            return False
        kind = type(value)
        if kind is int:
            if not -_SAFE < value < _SAFE:
                return False
        elif kind is not str and kind is not bool and value is not None:
            return False  # floats, nested objects and lists take the library's path
    return True


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b64(data: bytes) -> str:
    """URL-safe base64 without padding: what orders, keys and receipts carry."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    """Decode URL-safe base64 with or without padding; ValueError on anything else."""
    if not isinstance(text, str) or not _BASE64URL.match(text):
        raise ValueError("not base64url text")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ValueError("not base64url text") from exc
