"""Signed checkpoints of the log: C2SP signed-note + tlog-checkpoint, Ed25519.

A checkpoint note looks like this (https://c2sp.org/tlog-checkpoint)::

    <origin>
    <tree size in decimal>
    <base64 root hash>

    — <key name> <base64(4-byte key ID || 64-byte Ed25519 signature)>

Sou adds one extension line, ``previous <tree size>``: the size of the checkpoint the
sealer signed before this one (0 for the log's first), so that the signed checkpoints form a
chain and removing a stored one is seen by the audit. Verifiers that do not know it ignore it,
as the spec asks. The signature covers the body lines, newlines included.  The key ID is
SHA-256(key name || "\\n" || 0x01 || public key)[:4] (https://c2sp.org/signed-note).
Signatures by other keys (witness cosignatures, a rotated key) are ignored, as
the spec requires; a failing signature by the trusted key rejects the note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

import nacl.exceptions
import nacl.signing

from ledger.merkle import HASH_SIZE

ED25519_TYPE = b"\x01"
_DASH = "\u2014"  # EM DASH, which opens every signature line
_MAX_SIGNATURES = 100  # the spec asks for at least 16; more is a malformed note
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")  # decimal, no sign, no leading zero, < 2**64
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # control characters other than a newline
_KEY_ID = re.compile(r"[0-9a-f]{8}")
PREVIOUS = "previous"  # Sou's extension line: the size the last checkpoint signed


class CheckpointError(ValueError):
    """A checkpoint note or verifier key that cannot be trusted, said in plain words.

    `template` is the English sentence with {names} (a msgid of the audit's catalogue,
    extracted under the keyword `CheckpointError`) and `params` are their values, strings or
    integers, so that a page can say it in its reader's language; str() is the sentence.
    """

    def __init__(self, template: str, **params: str | int) -> None:
        super().__init__(template.format(**params))
        self.template, self.params = template, params

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (to or from another process), an exception is rebuilt from its args, here
        # the sentence: from the template and values instead, so that they are kept.
        return partial(CheckpointError, self.template, **self.params), ()


@dataclass(frozen=True)
class Checkpoint:
    """A verified tree head: the log `origin` had `size` leaves with this `root`."""

    origin: str
    size: int
    root: bytes
    previous: int | None = None  # the size of the checkpoint signed before, if it says


def checkpoint_body(origin: str, size: int, root: bytes, previous: int | None = None) -> str:
    """The signed text: origin, size and base64 root, one per line, then the previous
    checkpoint's size if given."""
    _check_origin(origin)
    if not 0 <= size < 2**64:
        raise CheckpointError("tree size must be between 0 and 2**64 - 1, got {size}", size=size)
    if len(root) != HASH_SIZE:
        raise CheckpointError(
            "a root hash is {expected} bytes, got {got}", expected=HASH_SIZE, got=len(root)
        )
    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    if previous is not None:
        if not 0 <= previous < size:
            raise CheckpointError("the previous checkpoint's size must be below {size}", size=size)
        body += f"{PREVIOUS} {previous}\n"
    return body


def sign_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    key_name: str,
    signing_key: nacl.signing.SigningKey,
    previous: int | None = None,
) -> str:
    """The whole checkpoint note, signed by `key_name` with `signing_key`.

    tlog-checkpoint recommends that the key name be the origin.
    """
    _check_key_name(key_name)
    body = checkpoint_body(origin, size, root, previous)
    public_key = bytes(signing_key.verify_key)
    signature = signing_key.sign(body.encode()).signature
    stamp = base64.b64encode(note_key_id(key_name, public_key) + signature).decode()
    return f"{body}\n{_DASH} {key_name} {stamp}\n"


def note_key_id(key_name: str, public_key: bytes) -> bytes:
    """The 4-byte signed-note key ID of an Ed25519 key."""
    digest = hashlib.sha256(key_name.encode() + b"\n" + ED25519_TYPE + public_key)
    return digest.digest()[:4]


def verifier_key(key_name: str, public_key: bytes) -> str:
    """The signed-note verifier key: "<name>+<8 hex key ID>+<base64(0x01||pubkey)>"."""
    _check_key_name(key_name)
    if len(public_key) != 32:
        raise CheckpointError("an Ed25519 public key is 32 bytes, got {got}", got=len(public_key))
    encoded = base64.b64encode(ED25519_TYPE + public_key).decode()
    return f"{key_name}+{note_key_id(key_name, public_key).hex()}+{encoded}"


def open_checkpoint(note: str, verifier: str, *, origin: str | None = None) -> Checkpoint:
    """Verify `note` with the verifier key `verifier` and return its checkpoint.

    If `origin` is given the checkpoint must be for that log.  Raises
    CheckpointError for anything malformed, unsigned by the key, or forged.
    Extension lines after the root are refused but Sou's one `previous` line:
    tlog-checkpoint advises against them since monitors cannot audit them.
    """
    name, kid, verify_key = _parse_verifier(verifier)
    body, signature_lines = _split_note(note)
    _check_signatures(body, signature_lines, name, kid, verify_key)
    checkpoint = _parse_body(body)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            "checkpoint is for log {origin}, expected {expected}",
            origin=repr(checkpoint.origin),
            expected=repr(origin),
        )
    return checkpoint


def _is_key_name(name: str) -> bool:
    # Signed-note: non-empty, no Unicode space, no "+" (it separates verifier key fields).
    return bool(name) and "+" not in name and not any(c.isspace() or c < " " for c in name)


def _check_key_name(name: str) -> None:
    if not _is_key_name(name):
        raise CheckpointError(
            "key name {name} must be non-empty, without spaces or '+'", name=repr(name)
        )


def _check_origin(origin: str) -> None:
    if not origin or any(c < " " for c in origin):
        raise CheckpointError(
            "origin {origin} must be one non-empty line of text", origin=repr(origin)
        )


def _b64decode(text: str) -> bytes | None:
    """Standard base64, canonical only, so that one value has one spelling; None if not.
    The caller names what is not valid: each sentence is a msgid of its own."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == text else None


def _parse_verifier(verifier: str) -> tuple[str, bytes, nacl.signing.VerifyKey]:
    """Split "<name>+<hex id>+<base64 key>" and check that the ID matches the key."""
    parts = verifier.split("+", 2)  # base64 may itself contain "+"
    if len(parts) != 3 or not _KEY_ID.fullmatch(parts[1]):
        raise CheckpointError("verifier key is not of the form name+keyid+key")
    name, hex_id, encoded = parts
    if not _is_key_name(name):
        raise CheckpointError("verifier key has an invalid key name {name}", name=repr(name))
    raw = _b64decode(encoded)
    if raw is None:
        raise CheckpointError("verifier key is not valid base64")
    if len(raw) != 33 or raw[:1] != ED25519_TYPE:
        raise CheckpointError("verifier key is not an Ed25519 key")
    if note_key_id(name, raw[1:]).hex() != hex_id:
        raise CheckpointError("verifier key ID does not match its name and key")
    return name, bytes.fromhex(hex_id), nacl.signing.VerifyKey(raw[1:])


def _split_note(note: str) -> tuple[str, list[str]]:
    """Split a note at its last blank line into text and signature lines."""
    if _CONTROL.search(note):
        raise CheckpointError("note contains control characters")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise CheckpointError("note has no signature block")
    lines = note[cut + 2 :].split("\n")[:-1]
    if not lines or len(lines) > _MAX_SIGNATURES:
        raise CheckpointError("note has no signature lines, or too many")
    return note[: cut + 1], lines


def _check_signatures(
    body: str, lines: list[str], name: str, kid: bytes, verify_key: nacl.signing.VerifyKey
) -> None:
    """Require a good signature by our key; ignore other keys' lines."""
    verified = False
    for line in lines:
        sig_name, stamp = _parse_signature_line(line)
        if sig_name != name or stamp[:4] != kid:
            continue  # another key (a witness, an older key): not ours to judge
        if len(stamp) != 4 + 64:
            raise CheckpointError("signature by {name} has the wrong length", name=name)
        try:
            verify_key.verify(body.encode(), stamp[4:])
        except nacl.exceptions.BadSignatureError as exc:
            raise CheckpointError(
                "signature by {name} does not match the checkpoint", name=name
            ) from exc
        verified = True
    if not verified:
        raise CheckpointError("checkpoint is not signed by {name}", name=name)


def _parse_signature_line(line: str) -> tuple[str, bytes]:
    """(key name, key ID || signature) from "— <name> <base64>"."""
    fields = line.split(" ")
    if len(fields) != 3 or fields[0] != _DASH:
        raise CheckpointError("note has a malformed signature line")
    _check_key_name(fields[1])
    stamp = _b64decode(fields[2])
    if stamp is None:
        raise CheckpointError("signature is not valid base64")
    if len(stamp) < 5:
        raise CheckpointError("note has a signature that is too short")
    return fields[1], stamp


def _parse_body(body: str) -> Checkpoint:
    """Origin, size, root and the previous size from the verified text; other extension
    lines are refused."""
    lines = body.split("\n")[:-1]
    if len(lines) not in (3, 4):
        raise CheckpointError("checkpoint text must be origin, size and root lines")
    origin, size_line, root_line = lines[:3]
    _check_origin(origin)
    size = _parse_size(size_line)
    if size is None:
        raise CheckpointError(
            "tree size {text} is not a plain decimal number", text=repr(size_line)
        )
    root = _b64decode(root_line)
    if root is None:
        raise CheckpointError("root hash is not valid base64")
    if len(root) != HASH_SIZE:
        raise CheckpointError(
            "root hash is {got} bytes, not {expected}", got=len(root), expected=HASH_SIZE
        )
    previous = _parse_previous(lines[3], size) if len(lines) == 4 else None
    return Checkpoint(origin=origin, size=size, root=root, previous=previous)


def _parse_previous(line: str, size: int) -> int:
    """The size Sou's `previous` line names, below the checkpoint's own."""
    word, _, value = line.partition(" ")
    if word != PREVIOUS:
        raise CheckpointError("checkpoint has an extension line Sou does not write")
    previous = _parse_size(value)
    if previous is None:
        raise CheckpointError(
            "previous tree size {text} is not a plain decimal number", text=repr(value)
        )
    if previous >= size:
        raise CheckpointError(
            "previous tree size {previous} is not below {size}", previous=previous, size=size
        )
    return previous


def _parse_size(text: str) -> int | None:
    """A size as a note writes it (decimal, no sign, no leading zero, below 2**64); None
    if it is not."""
    return int(text) if _SIZE.fullmatch(text) and int(text) < 2**64 else None
