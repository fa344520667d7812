"""ledger.checkpoint: signed-note checkpoints, checked against tests/log_verifier.py
and against notes signed by Go's implementation.

Interoperability vectors:
- PeterNeumann key, text and signature: golang.org/x/mod `sumdb/note/note_test.go`.
- A real sum.golang.org checkpoint (tree size 31700353), as quoted in
  transparency-dev/trillian-tessera `internal/parse/parse_test.go`, with the
  sum.golang.org verifier key built into the go command.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from string import Formatter
from typing import Any

import nacl.signing
import pytest
from babel.messages.extract import extract_from_file
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_body,
    note_key_id,
    open_checkpoint,
    sign_checkpoint,
    verifier_key,
)
from tests import log_verifier

DASH = "\u2014"
ORIGIN = "sou.example/ledger"
ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
KEY = nacl.signing.SigningKey(bytes(range(32)))
OTHER_KEY = nacl.signing.SigningKey(bytes(range(1, 33)))
PUBLIC = bytes(KEY.verify_key)
VKEY = verifier_key(ORIGIN, PUBLIC)
URLSAFE_ROOT = base64.urlsafe_b64encode(b"\xff" * 32).decode()

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)

GO_SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
GO_SUMDB_NOTE = (
    "go.sum database tree\n31700353\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n\n"
    f"{DASH} sum.golang.org Az3grnmrIUEDFqHzAElIQCPNoRFRAAdFo47fooyWKMHb89k11GJh5zHIf"
    "NCOBmwn/C3YI8oW9/C8DJ87F61QqspBYwM=\n"
)


def signature_line(text: str, name: str, key: nacl.signing.SigningKey) -> str:
    """A signed-note signature line made by hand from the spec, for any text."""
    public = bytes(key.verify_key)
    kid = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    signature = key.sign(text.encode()).signature
    return f"{DASH} {name} {base64.b64encode(kid + signature).decode()}\n"


def hand_signed(text: str) -> str:
    """A note with any text, signed by KEY under ORIGIN, bypassing checkpoint_body."""
    return text + "\n" + signature_line(text, ORIGIN, KEY)


def refused_by_both(note: str, vkey: str = VKEY) -> bool:
    for opener in (open_checkpoint, log_verifier.open_checkpoint):
        try:
            opener(note, vkey)
        except ValueError:
            continue
        return False
    return True


def test_sign_then_open() -> None:
    note = sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY)
    assert open_checkpoint(note, VKEY) == Checkpoint(ORIGIN, 8, ROOT)
    assert open_checkpoint(note, VKEY, origin=ORIGIN).size == 8
    assert log_verifier.open_checkpoint(note, VKEY) == (ORIGIN, 8, ROOT)


def test_note_has_the_exact_signed_note_layout() -> None:
    body = f"{ORIGIN}\n8\n{base64.b64encode(ROOT).decode()}\n"
    assert checkpoint_body(ORIGIN, 8, ROOT) == body
    assert sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY) == hand_signed(body)


def test_a_checkpoint_names_the_one_signed_before_it() -> None:
    note = sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY, previous=5)
    assert note.startswith(f"{ORIGIN}\n8\n{base64.b64encode(ROOT).decode()}\nprevious 5\n\n")
    assert open_checkpoint(note, VKEY) == Checkpoint(ORIGIN, 8, ROOT, previous=5)
    # A verifier that knows nothing of the line reads the checkpoint all the same.
    assert log_verifier.open_checkpoint(note, VKEY) == (ORIGIN, 8, ROOT)
    first = sign_checkpoint(ORIGIN, 3, ROOT, ORIGIN, KEY, previous=0)
    assert open_checkpoint(first, VKEY).previous == 0


@pytest.mark.parametrize(
    "line", ["previous 8", "previous 9", "previous -1", "previous 05", "previous", "prev 5"]
)
def test_a_previous_line_not_below_the_size_or_malformed_is_refused(line: str) -> None:
    body = f"{ORIGIN}\n8\n{base64.b64encode(ROOT).decode()}\n{line}\n"
    with pytest.raises(CheckpointError):
        open_checkpoint(hand_signed(body), VKEY)
    with pytest.raises(CheckpointError):
        checkpoint_body(ORIGIN, 8, ROOT, previous=8)


def test_empty_tree_checkpoint() -> None:
    empty_root = hashlib.sha256(b"").digest()
    note = sign_checkpoint(ORIGIN, 0, empty_root, ORIGIN, KEY)
    assert note.startswith(f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n")
    assert open_checkpoint(note, VKEY) == Checkpoint(ORIGIN, 0, empty_root)


def test_key_hash_and_verifier_key_known_answer() -> None:
    by_hand = hashlib.sha256(b"sou.example/ledger\n\x01" + PUBLIC).digest()[:4]
    assert note_key_id(ORIGIN, PUBLIC) == by_hand
    encoded = base64.b64encode(b"\x01" + PUBLIC).decode()
    assert verifier_key(ORIGIN, PUBLIC) == f"sou.example/ledger+{by_hand.hex()}+{encoded}"
    assert log_verifier.read_verifier_key(VKEY) == (ORIGIN, by_hand, PUBLIC)


def test_go_note_vectors_interoperate() -> None:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]  # 0x01 || 32-byte seed
    peter = nacl.signing.SigningKey(seed)
    public = bytes(peter.verify_key)
    assert verifier_key("PeterNeumann", public) == PETER_VKEY
    assert note_key_id("PeterNeumann", public).hex() == "c74f20a3"
    assert signature_line(PETER_TEXT, "PeterNeumann", peter) == f"{DASH} PeterNeumann {PETER_SIG}\n"
    go_note = f"{PETER_TEXT}\n{DASH} PeterNeumann {PETER_SIG}\n"
    assert log_verifier.open_note(go_note, PETER_VKEY) == PETER_TEXT
    note = sign_checkpoint("example.com/log", 3, ROOT, "PeterNeumann", peter)
    assert open_checkpoint(note, PETER_VKEY).origin == "example.com/log"


def test_a_real_go_checksum_database_checkpoint_opens() -> None:
    root = base64.b64decode("qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=")
    expected = Checkpoint("go.sum database tree", 31700353, root)
    assert open_checkpoint(GO_SUMDB_NOTE, GO_SUMDB_VKEY) == expected
    assert log_verifier.open_checkpoint(GO_SUMDB_NOTE, GO_SUMDB_VKEY) == (
        "go.sum database tree",
        31700353,
        root,
    )
    assert refused_by_both(GO_SUMDB_NOTE.replace("31700353", "31700354"), GO_SUMDB_VKEY)


def test_every_changed_character_of_the_body_is_refused() -> None:
    note = sign_checkpoint(ORIGIN, 1234, ROOT, ORIGIN, KEY)
    body_end = note.index("\n\n") + 1
    for i in range(body_end):
        tampered = note[:i] + chr(ord(note[i]) ^ 1) + note[i + 1 :]
        assert refused_by_both(tampered), i


def test_every_changed_character_of_the_signature_is_refused() -> None:
    note = sign_checkpoint(ORIGIN, 1234, ROOT, ORIGIN, KEY)
    start = note.rindex(" ") + 1
    for i in range(start, len(note) - 1):
        tampered = note[:i] + chr(ord(note[i]) ^ 1) + note[i + 1 :]
        assert refused_by_both(tampered), i


def test_a_changed_key_name_is_refused() -> None:
    note = sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY)
    renamed = note.replace(f"{DASH} {ORIGIN} ", f"{DASH} sou.example/ledgex ")
    assert refused_by_both(renamed)
    # The same key under another name has another key ID, so it does not verify either.
    assert refused_by_both(note, verifier_key("sou.example/other", PUBLIC))


def test_another_key_is_refused() -> None:
    forged = sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, OTHER_KEY)
    assert refused_by_both(forged)
    note = sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY)
    assert refused_by_both(note, verifier_key(ORIGIN, bytes(OTHER_KEY.verify_key)))


def test_other_signatures_are_ignored_but_a_bad_one_of_ours_is_not() -> None:
    note = sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY)
    body = checkpoint_body(ORIGIN, 8, ROOT)
    witnesses = "".join(signature_line(body, f"witness{i}.example", OTHER_KEY) for i in range(15))
    cosigned = note + witnesses  # 16 signatures: the spec's minimum to accept
    assert open_checkpoint(cosigned, VKEY) == Checkpoint(ORIGIN, 8, ROOT)
    assert log_verifier.open_checkpoint(cosigned, VKEY) == (ORIGIN, 8, ROOT)
    other_body = checkpoint_body(ORIGIN, 9, ROOT)
    bad_ours = note + signature_line(other_body, ORIGIN, KEY)
    assert refused_by_both(bad_ours)


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n08\n{base64.b64encode(ROOT).decode()}\n",  # leading zero
        f"{ORIGIN}\n+8\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n-8\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n18446744073709551616\n{base64.b64encode(ROOT).decode()}\n",  # 2**64
        f"{ORIGIN}\n8\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n8\n{base64.b64encode(ROOT).decode()[:-2]}\n",
        f"{ORIGIN}\n8\n{URLSAFE_ROOT}\n",  # "-" and "_" are not standard base64
        f"{ORIGIN}\n8\n{base64.b64encode(ROOT).decode()}\nextension line\n",
        f"\n8\n{base64.b64encode(ROOT).decode()}\n",  # no origin
        f"{ORIGIN}\n8\n",
        f"{ORIGIN}\t\n8\n{base64.b64encode(ROOT).decode()}\n",  # control character
    ],
)
def test_malformed_checkpoint_text_is_refused_even_when_signed(body: str) -> None:
    with pytest.raises(CheckpointError):
        open_checkpoint(hand_signed(body), VKEY)


def test_non_canonical_base64_root_is_refused() -> None:
    encoded = base64.b64encode(ROOT).decode()
    # 32 bytes leave 2 unused bits in the last character before "=": set one.
    last = encoded[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sloppy = encoded[:-2] + alphabet[alphabet.index(last) | 1] + "="
    assert sloppy != encoded and base64.b64decode(sloppy) == ROOT
    with pytest.raises(CheckpointError):
        open_checkpoint(hand_signed(f"{ORIGIN}\n8\n{sloppy}\n"), VKEY)


@pytest.mark.parametrize(
    "note",
    [
        "",
        checkpoint_body(ORIGIN, 8, ROOT),  # no signatures at all
        checkpoint_body(ORIGIN, 8, ROOT) + "\n",
        sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY)[:-1],  # no final newline
        sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY) + "Unexpected line.\n",
        sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY).replace(DASH, "-"),
        sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY).replace("\n", "\r\n"),
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(CheckpointError):
        open_checkpoint(note, VKEY)


def test_a_checkpoint_of_another_log_is_refused_when_the_origin_is_given() -> None:
    note = sign_checkpoint("sou.example/elsewhere", 8, ROOT, ORIGIN, KEY)
    assert open_checkpoint(note, VKEY).origin == "sou.example/elsewhere"
    with pytest.raises(CheckpointError, match="elsewhere"):
        open_checkpoint(note, VKEY, origin=ORIGIN)


@pytest.mark.parametrize("name", ["", "two words", "a+b", "tab\there", "new\nline", "nbsp\u00a0"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(CheckpointError):
        verifier_key(name, PUBLIC)
    with pytest.raises(CheckpointError):
        sign_checkpoint(ORIGIN, 8, ROOT, name, KEY)


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [
        ("", 8, ROOT),
        ("two\nlines", 8, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, 2**64, ROOT),
        (ORIGIN, 8, ROOT[:31]),
    ],
)
def test_checkpoints_that_cannot_be_written_are_refused(
    origin: str, size: int, root: bytes
) -> None:
    with pytest.raises(CheckpointError):
        sign_checkpoint(origin, size, root, ORIGIN, KEY)


def test_every_mangled_verifier_key_is_refused() -> None:
    """As golang.org/x/mod's TestNewVerifier: every proper substring and every
    single-character change of a good key is refused."""
    note = sign_checkpoint(ORIGIN, 8, ROOT, "PeterNeumann", _peter())
    open_checkpoint(note, PETER_VKEY)
    n = len(PETER_VKEY)
    substrings = [
        PETER_VKEY[i:j] for i in range(n) for j in range(i + 1, n + 1) if (i, j) != (0, n)
    ]
    changed = [PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :] for i in range(n)]
    for bad in substrings + changed:
        # "verifier key" errors come from reading the key, before the note is looked at.
        with pytest.raises(CheckpointError, match="verifier key"):
            open_checkpoint(note, bad)


@pytest.mark.parametrize(
    "vkey",
    [
        # From TestNewVerifier: a 40-byte key and an unknown algorithm, both with a matching ID.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        PETER_VKEY.upper(),
        PETER_VKEY.replace("c74f20a3", "C74F20A3"),
    ],
)
def test_verifier_keys_of_the_wrong_kind_are_refused(vkey: str) -> None:
    note = sign_checkpoint(ORIGIN, 8, ROOT, "PeterNeumann", _peter())
    with pytest.raises(CheckpointError, match="verifier key"):
        open_checkpoint(note, vkey)


@pytest.mark.parametrize(
    "vkey",
    [
        PETER_VKEY.replace("c74f20a3", "c74f20a4"),
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
    ],
)
def test_the_independent_verifier_refuses_bad_verifier_keys(vkey: str) -> None:
    with pytest.raises(ValueError):
        log_verifier.read_verifier_key(vkey)


def test_errors_are_value_errors_in_plain_words() -> None:
    forged = sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, OTHER_KEY)
    with pytest.raises(ValueError, match=f"not signed by {ORIGIN}"):
        open_checkpoint(forged, VKEY)
    note = sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY)
    with pytest.raises(CheckpointError, match="control characters"):
        open_checkpoint(note.replace("\n", "\r\n"), VKEY)


def _peter() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:])


# -- the refusals as msgids ----------------------------------------------------------------

SOURCE = Path(__file__).resolve().parent.parent
NOTE = sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, KEY)
BODY = checkpoint_body(ORIGIN, 8, ROOT)
SHORT_STAMP = base64.b64encode(note_key_id(ORIGIN, PUBLIC) + bytes(10)).decode()


def _opened(note: str, vkey: str = VKEY) -> Callable[[], Any]:
    return lambda: open_checkpoint(note, vkey)


# Every sentence the parser refuses with (its template), and something refused with it.
REFUSALS: dict[str, Callable[[], Any]] = {
    "tree size must be between 0 and 2**64 - 1, got {size}": lambda: checkpoint_body(
        ORIGIN, -1, ROOT
    ),
    "a root hash is {expected} bytes, got {got}": lambda: checkpoint_body(ORIGIN, 8, ROOT[:31]),
    "the previous checkpoint's size must be below {size}": lambda: checkpoint_body(
        ORIGIN, 8, ROOT, previous=8
    ),
    "an Ed25519 public key is 32 bytes, got {got}": lambda: verifier_key(ORIGIN, PUBLIC[:31]),
    "checkpoint is for log {origin}, expected {expected}": lambda: open_checkpoint(
        sign_checkpoint("sou.example/elsewhere", 8, ROOT, ORIGIN, KEY), VKEY, origin=ORIGIN
    ),
    "key name {name} must be non-empty, without spaces or '+'": lambda: verifier_key(
        "two words", PUBLIC
    ),
    "origin {origin} must be one non-empty line of text": lambda: checkpoint_body("", 8, ROOT),
    "verifier key is not of the form name+keyid+key": _opened(NOTE, "PeterNeumann+c74f20a3"),
    "verifier key has an invalid key name {name}": _opened(
        NOTE, PETER_VKEY.replace("PeterNeumann", "Peter Neumann")
    ),
    "verifier key is not valid base64": _opened(NOTE, PETER_VKEY + "!"),
    "verifier key is not an Ed25519 key": _opened(
        NOTE, "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    ),
    "verifier key ID does not match its name and key": _opened(
        NOTE, PETER_VKEY.replace("c74f20a3", "c74f20a4")
    ),
    "note contains control characters": _opened(NOTE.replace("\n", "\r\n")),
    "note has no signature block": _opened(BODY),
    "note has no signature lines, or too many": _opened(BODY + "\n"),
    "signature by {name} has the wrong length": _opened(f"{BODY}\n{DASH} {ORIGIN} {SHORT_STAMP}\n"),
    "signature by {name} does not match the checkpoint": _opened(
        NOTE + signature_line(checkpoint_body(ORIGIN, 9, ROOT), ORIGIN, KEY)
    ),
    "checkpoint is not signed by {name}": _opened(
        sign_checkpoint(ORIGIN, 8, ROOT, ORIGIN, OTHER_KEY)
    ),
    "note has a malformed signature line": _opened(NOTE.replace(DASH, "-")),
    "signature is not valid base64": _opened(f"{BODY}\n{DASH} {ORIGIN} !!!!\n"),
    "note has a signature that is too short": _opened(f"{BODY}\n{DASH} {ORIGIN} AAAA\n"),
    "checkpoint text must be origin, size and root lines": _opened(hand_signed(f"{ORIGIN}\n8\n")),
    "tree size {text} is not a plain decimal number": _opened(
        hand_signed(BODY.replace("\n8\n", "\n08\n"))
    ),
    "root hash is not valid base64": _opened(hand_signed(f"{ORIGIN}\n8\n{URLSAFE_ROOT}\n")),
    "root hash is {got} bytes, not {expected}": _opened(hand_signed(f"{ORIGIN}\n8\nAAAA\n")),
    "checkpoint has an extension line Sou does not write": _opened(
        hand_signed(BODY + "extension line\n")
    ),
    "previous tree size {text} is not a plain decimal number": _opened(
        hand_signed(BODY + "previous 05\n")
    ),
    "previous tree size {previous} is not below {size}": _opened(
        hand_signed(BODY + "previous 9\n")
    ),
}


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name is not None}


def refusal_msgids() -> set[str]:
    """What pybabel extracts from the parser with babel.cfg's keywords: its refusals."""
    with (SOURCE / "babel.cfg").open() as cfg:
        _, options = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    keywords = options["**.py"]["keywords"]
    found = extract_from_file("python", str(SOURCE / "ledger/checkpoint.py"), keywords=keywords)
    return {m[1] for m in found if isinstance(m[1], str)}


@pytest.mark.parametrize("template", REFUSALS)
def test_a_refusal_keeps_its_template_and_plain_values_that_say_it(template: str) -> None:
    with pytest.raises(CheckpointError) as refused:
        REFUSALS[template]()
    error = refused.value
    assert error.template == template
    assert set(error.params) == fields(template)
    assert all(type(value) in (str, int) for value in error.params.values())
    assert json.loads(json.dumps(error.params)) == error.params  # as a stored run keeps them
    assert template.format(**error.params) == str(error)
    again = pickle.loads(pickle.dumps(error))  # as a worker process would send it
    assert (again.template, again.params, str(again)) == (template, error.params, str(error))


def test_the_refusals_above_are_every_one_the_parser_writes() -> None:
    assert set(REFUSALS) == refusal_msgids()


def test_every_refusal_has_its_french_in_the_audits_catalogue() -> None:
    """The audit's page quotes them in its findings: their French is in audit.po."""
    with (SOURCE / "web/locale/fr/LC_MESSAGES/audit.po").open("rb") as po:
        french = {str(m.id): str(m.string) for m in read_po(po) if m.id}
    for template in REFUSALS:
        assert french.get(template), template
        assert fields(french[template]) == fields(template), template
