"""An independent verifier for Sou's log, written from the specifications alone.

It imports nothing else of Sou (PyNaCl only), so that a resident can read it in one sitting
and check a node's answers without trusting the node's code:

- RFC 6962 section 2.1: leaf and node hashes.
- RFC 9162 section 2.1.3.2: verify an inclusion proof.
- RFC 9162 section 2.1.4.2: verify a consistency proof.
- https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint: read a signed
  checkpoint and check its Ed25519 signature against a verifier key
  "<name>+<8 hex key ID>+<base64(0x01 || public key)>".

Every check function returns False or raises ValueError; nothing here trusts its input.

From the command line (exit 0 valid, 1 invalid, 2 could not read)::

    python -m ledger.verify receipt.json --key 'village+1a2b3c4d+AbC...'
    python -m ledger.verify receipt.json --node https://sou.example.org
    python -m ledger.verify checkpoint new.txt --key ...
    python -m ledger.verify checkpoint old.txt new.txt --key ... --node https://...

A receipt file is what the node's route `GET /api/v1/transfers/{id}/receipt` answers: the
transfer's leaf (its canonical JSON: the signed order, its postings, its time), its index, the
inclusion proof and the signed checkpoint it leads to.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

VALID, INVALID, UNREADABLE = 0, 1, 2


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


def unbase64url(text: str) -> bytes:
    """URL-safe base64 without padding (the proofs' hashes), refusing other spellings."""
    if not isinstance(text, str) or "=" in text:
        raise ValueError("not base64url text")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
        raise ValueError("not canonical base64url")
    return raw


def key_id(name: str, public_key: bytes) -> bytes:
    """signed-note: SHA-256(key name || 0x0A || 0x01 || Ed25519 public key)[:4]."""
    return sha256(name.encode() + b"\n" + b"\x01" + public_key)[:4]


def make_verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key of an Ed25519 public key: "<name>+<hex key ID>+<base64(0x01||key)>"."""
    encoded = base64.b64encode(b"\x01" + public_key).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


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


# -- receipts ----------------------------------------------------------------------------------


class Unreadable(Exception):
    """The input is not a receipt, a checkpoint or a key at all: nothing could be checked."""


class Invalid(Exception):
    """The input reads, but does not check out: said in plain words."""


@dataclass(frozen=True)
class Receipt:
    transfer_id: int
    leaf: bytes
    index: int
    tree_size: int
    proof: list[str]  # base64url hashes, as the node gives them
    checkpoint: str


def read_receipt(text: str) -> Receipt:
    """A receipt file (the node's receipt route's JSON). Unreadable if it is not one."""
    try:
        body = json.loads(text)
        receipt = Receipt(
            transfer_id=body["transfer_id"],
            leaf=body["leaf"].encode(),
            index=body["index"],
            tree_size=body["tree_size"],
            proof=list(body["proof"]),
            checkpoint=body["checkpoint"],
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Unreadable(f"this is not a Sou receipt ({exc.__class__.__name__}: {exc})") from None
    numbers = (receipt.transfer_id, receipt.index, receipt.tree_size)
    if not all(type(n) is int for n in numbers) or not isinstance(receipt.checkpoint, str):
        raise Unreadable("this is not a Sou receipt: its numbers or checkpoint are missing")
    return receipt


def read_transfer(receipt: Receipt) -> dict[str, Any]:
    """The transfer the leaf holds, checked for what it says on its face: its id, postings
    that sum to zero in each currency, and canonical bytes (one spelling of one transfer)."""
    try:
        leaf = json.loads(receipt.leaf)
    except ValueError:
        raise Invalid("the transfer in the receipt is not readable JSON: it was altered") from None
    if not isinstance(leaf, dict) or leaf.get("type") != "transfer":
        raise Invalid("the receipt's entry is not a transfer")
    if leaf.get("id") != receipt.transfer_id:
        raise Invalid(
            f"the receipt says transfer {receipt.transfer_id}, its entry is {leaf.get('id')}"
        )
    canonical = json.dumps(leaf, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if canonical.encode() != receipt.leaf:
        raise Invalid("the transfer's bytes are not as the node writes them: it was altered")
    sums: dict[str, int] = {}
    try:
        for _account, currency, amount in leaf["postings"]:
            sums[currency] = sums.get(currency, 0) + amount
    except (KeyError, TypeError, ValueError):
        raise Invalid("the transfer's postings are not readable") from None
    if any(sums.values()):
        raise Invalid("the transfer's postings do not sum to zero: it was altered")
    return leaf


def check_receipt(receipt: Receipt, vkey: str) -> tuple[dict[str, Any], tuple[str, int, bytes]]:
    """The transfer and the checkpoint of a receipt that checks out; Invalid says why not."""
    transfer = read_transfer(receipt)
    checkpoint = check_checkpoint(receipt.checkpoint, vkey)
    _, size, root = checkpoint
    if size != receipt.tree_size:
        raise Invalid(f"the receipt says {receipt.tree_size} entries, its checkpoint {size}")
    try:
        proof = [unbase64url(h) for h in receipt.proof]
    except (ValueError, TypeError):
        raise Invalid("the inclusion proof is not a list of hashes: it was altered") from None
    if any(len(h) != 32 for h in proof) or not verify_inclusion(
        leaf_hash(receipt.leaf), receipt.index, size, proof, root
    ):
        raise Invalid(
            "the transfer and its proof do not lead to the signed checkpoint: the transfer, "
            "its position or the proof was altered, or the log was"
        )
    return transfer, checkpoint


def check_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """(origin, size, root) of a checkpoint the key signed; Invalid says why not."""
    try:
        return open_checkpoint(note, vkey)
    except ValueError as exc:
        if str(exc) == "bad signature":
            raise Invalid("the checkpoint's signature does not match its text") from None
        if str(exc) == "not signed by this key":
            raise Invalid("the checkpoint is not signed by the node's key you gave") from None
        raise Invalid(f"the checkpoint is not a well-formed signed checkpoint ({exc})") from None


def check_consistency(
    old: tuple[str, int, bytes], new: tuple[str, int, bytes], proof: list[bytes]
) -> None:
    """The log of `new` extends the log of `old`: Invalid says if it does not."""
    (old_origin, old_size, old_root), (new_origin, new_size, new_root) = old, new
    if old_origin != new_origin:
        raise Invalid(f"the checkpoints are of two logs: {old_origin!r} and {new_origin!r}")
    if old_size > new_size:
        raise Invalid(f"the newer checkpoint has fewer entries ({new_size}) than the older one")
    if old_size == new_size:
        if old_root != new_root:
            raise Invalid("two checkpoints of the same size with different contents: forked log")
        return
    if old_size == 0:
        return  # the empty log is a prefix of every log
    if not verify_consistency(old_size, new_size, old_root, new_root, proof):
        raise Invalid(
            f"the log of {new_size} entries does not extend the one of {old_size} you kept: "
            "entries were altered, removed or reordered"
        )


# -- asking a node -----------------------------------------------------------------------------


def fetch(url: str) -> bytes:
    """GET a URL; Unreadable when it cannot be had."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return bytes(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Unreadable(f"could not read {url}: {exc}") from None


def node_verifier_key(node_url: str) -> str:
    """The verifier key of a node, from its public keys (`/api/v1/node`)."""
    try:
        info = json.loads(fetch(node_url.rstrip("/") + "/api/v1/node"))
        public = next(k["public_key"] for k in info["keys"] if k["owner"] == "node")
        return make_verifier_key(info["origin"], unbase64url(public))
    except (ValueError, KeyError, TypeError, StopIteration):
        raise Unreadable(f"{node_url} does not answer as a Sou node") from None


def node_consistency(node_url: str, old_size: int, new_size: int) -> list[bytes]:
    query = urllib.parse.urlencode({"from": old_size, "to": new_size})
    try:
        body = json.loads(fetch(f"{node_url.rstrip('/')}/api/v1/log/consistency?{query}"))
        return [unbase64url(h) for h in body["proof"]]
    except (ValueError, KeyError, TypeError):
        raise Unreadable(f"{node_url} gave no readable consistency proof") from None


# -- the command line --------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(f"could not read {path}: {exc}") from None


def _key(args: argparse.Namespace) -> str:
    """The key to trust: --key as given, else the node's as it says it (--node)."""
    if args.key:
        try:
            read_verifier_key(args.key)
        except ValueError as exc:
            raise Unreadable(f"--key is not a verifier key ({exc})") from None
        return str(args.key)
    if args.node:
        return node_verifier_key(args.node)
    raise Unreadable(
        "say which key to trust: --key (the verifier key on the node's /transparence page) "
        "or --node https://... (the node's address)"
    )


def _amounts(transfer: dict[str, Any]) -> str:
    legs = [f"{account} {amount / 100:+.2f} {cur}" for account, cur, amount in transfer["postings"]]
    return "; ".join(legs)


def verify_receipt_file(args: argparse.Namespace) -> int:
    receipt = read_receipt(_read(args.receipt))
    vkey = _key(args)
    transfer, checkpoint = check_receipt(receipt, vkey)
    origin, size, _ = checkpoint
    order: dict[str, Any] = transfer["order"] if isinstance(transfer.get("order"), dict) else {}
    print(f"Valid: transfer {receipt.transfer_id} is entry {receipt.index + 1} of the log of")
    print(f"{origin}, which held {size} entries when the node signed this checkpoint.")
    print(f"What it did: {order.get('kind', 'transfer')}: {_amounts(transfer)}.")
    if args.node:
        latest = check_checkpoint(_fetch_text(args.node, "/api/v1/checkpoint"), vkey)
        proof = node_consistency(args.node, size, latest[1]) if latest[1] > size else []
        check_consistency(checkpoint, latest, proof)
        print(f"The node's log today ({latest[1]} entries) still holds it: it only grew since.")
    return VALID


def _fetch_text(node_url: str, path: str) -> str:
    try:
        return fetch(node_url.rstrip("/") + path).decode()
    except UnicodeDecodeError:
        raise Unreadable(f"{node_url}{path} is not text") from None


def verify_checkpoint_files(args: argparse.Namespace) -> int:
    notes = [_read(path) for path in args.checkpoints]
    vkey = _key(args)
    opened = [check_checkpoint(note, vkey) for note in notes]
    for path, (origin, size, _) in zip(args.checkpoints, opened, strict=True):
        print(f"Valid: {path} is signed by the node; the log of {origin} held {size} entries.")
    if len(opened) == 2:
        old, new = sorted(opened, key=lambda c: c[1])
        proof: list[bytes] = []
        if 0 < old[1] < new[1]:
            if not args.node:
                raise Unreadable("to compare two checkpoints, give --node to ask for the proof")
            proof = node_consistency(args.node, old[1], new[1])
        check_consistency(old, new, proof)
        print(f"Consistent: the log of {new[1]} entries extends the one of {old[1]} entries.")
    return VALID


def parser() -> argparse.ArgumentParser:
    # Run as the module of the node's source, or as the file a resident downloaded.
    ran = "python -m ledger.verify" if __spec__ and __spec__.name == "ledger.verify" else None
    prog = ran or f"python {os.path.basename(sys.argv[0]) or 'sou_verify.py'}"
    tool = argparse.ArgumentParser(
        prog=prog,
        description="Check a Sou receipt or signed checkpoint without trusting the node. "
        "Exit 0: valid; 1: does not check out; 2: could not read the input.",
        epilog=f"  {prog} receipt.json --key KEY\n"
        f"  {prog} checkpoint kept.txt latest.txt --key KEY --node URL",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tool.add_argument(
        "receipt", help="a receipt file (JSON), or the word `checkpoint` then 1 or 2 files"
    )
    tool.add_argument(
        "files",
        nargs="*",
        metavar="checkpoint.txt",
        help="after `checkpoint`: the kept checkpoint, then optionally a newer one",
    )
    tool.add_argument("--key", help="the node's verifier key (name+keyid+key), as published")
    tool.add_argument("--node", help="the node's address (https://...): ask it what it says")
    return tool


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.receipt == "checkpoint":
            if not 1 <= len(args.files) <= 2:
                raise Unreadable("give one checkpoint file, or two (the older, then the newer)")
            args.checkpoints = args.files
            return verify_checkpoint_files(args)
        if args.files:
            raise Unreadable("give one receipt file (or `checkpoint` then checkpoint files)")
        return verify_receipt_file(args)
    except Invalid as exc:
        print(f"NOT VALID: {exc}.", file=sys.stderr)
        return INVALID
    except Unreadable as exc:
        print(f"Could not check: {exc}.", file=sys.stderr)
        return UNREADABLE


if __name__ == "__main__":
    sys.exit(main())
