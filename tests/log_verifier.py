"""An independent verifier for Sou's log, written from the specifications alone.

It imports nothing from Sou, so a resident (or a test) can check the node's
answers with one page of code:

- RFC 6962 section 2.1: leaf and node hashes.
- RFC 9162 section 2.1.3.2: verify an inclusion proof.
- RFC 9162 section 2.1.4.2: verify a consistency proof.
- https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint: read a
  signed checkpoint and check its Ed25519 signature against a verifier key
  "<name>+<8 hex key ID>+<base64(0x01 || public key)>".

Every function returns False or raises ValueError; nothing here trusts its input.
"""

import base64
import hashlib

import nacl.exceptions
import nacl.signing


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2, word for word.  `leaf` is the leaf hash."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            r = node_hash(r, p)
        fn, sn = fn // 2, sn // 2
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2, word for word, for 0 < first < second."""
    if not 0 < first < second or not proof:
        return False
    if first & (first - 1) == 0:  # first is an exact power of 2
        proof = [first_hash, *proof]
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn, sn = fn // 2, sn // 2
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            sr = node_hash(sr, c)
        fn, sn = fn // 2, sn // 2
    return fr == first_hash and sr == second_hash and sn == 0


def unbase64(text: str) -> bytes:
    """Standard base64, refusing any other spelling of the same bytes."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


def key_id(name: str, public_key: bytes) -> bytes:
    """signed-note: SHA-256(key name || 0x0A || 0x01 || Ed25519 public key)[:4]."""
    return sha256(name.encode() + b"\n" + b"\x01" + public_key)[:4]


def read_verifier_key(vkey: str) -> tuple[str, bytes, bytes]:
    """Split "<name>+<hex key ID>+<base64(0x01 || key)>" into (name, key ID, public key)."""
    name, hex_id, key64 = vkey.split("+", 2)
    key = unbase64(key64)
    if not name or len(key) != 33 or key[0] != 1:
        raise ValueError("not an Ed25519 verifier key")
    if key_id(name, key[1:]).hex() != hex_id:
        raise ValueError("the key ID does not match the name and key")
    return name, key_id(name, key[1:]), key[1:]


def open_note(note: str, vkey: str) -> str:
    """Return the text of a signed note if the key `vkey` signed it."""
    name, kid, public_key = read_verifier_key(vkey)
    text, blank, signatures = note.rpartition("\n\n")  # the LAST blank line ends the text
    if not blank or not note.endswith("\n"):
        raise ValueError("not a signed note")
    text += "\n"
    signed = False
    for line in signatures.split("\n")[:-1]:
        dash, sig_name, sig64 = line.split(" ")
        sig = unbase64(sig64)
        if dash != "\u2014" or sig_name != name or sig[:4] != kid:
            continue  # a signature by some other key: ignore it
        try:
            nacl.signing.VerifyKey(public_key).verify(text.encode(), sig[4:])
        except nacl.exceptions.BadSignatureError:
            raise ValueError("bad signature") from None
        signed = True
    if not signed:
        raise ValueError("not signed by this key")
    return text


def open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """(origin, tree size, root hash) of a checkpoint signed by `vkey`."""
    origin, size, root64 = open_note(note, vkey).split("\n")[:3]
    root = unbase64(root64)
    if not origin or not (size.isascii() and size.isdigit()) or len(root) != 32:
        raise ValueError("not a checkpoint")
    return origin, int(size), root
