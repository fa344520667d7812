"""Receipts and consistency proofs from the stored log, checked by the independent verifier
(tests/log_verifier.py), which knows nothing of the ledger's code."""

from __future__ import annotations

import json

from sqlalchemy import Engine

from ledger import repository as repo
from ledger.checkpoint import verifier_key
from ledger.posting import Posted
from ledger.proofs import consistency, receipt
from ledger.sealer import Sealer
from tests import log_verifier
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book

VKEY = verifier_key(ORIGIN, NODE_KEY.public_key)


def test_every_transfer_has_a_receipt_a_stranger_can_check(book: Book, engine: Engine) -> None:
    sealer = Sealer(engine, NODE_KEY, ORIGIN)
    people = [book.member(f"p{i}", 1_000) for i in range(3)]
    posted: list[Posted] = []
    for n in range(13):  # sealed in rounds of uneven sizes: the tree is never perfect
        posted.append(book.ledger.transfer(book.payment(people[n % 3], people[(n + 1) % 3], n + 1)))
        if n % 4 == 2:
            sealer.seal_all()
    with book.ledger.reading() as conn:
        assert receipt(conn, posted[-1].transfer_id) is None  # not sealed yet
    sealer.seal_all()
    with book.ledger.reading() as conn:
        for p in posted:
            r = receipt(conn, p.transfer_id)
            assert r is not None
            origin, size, root = log_verifier.open_checkpoint(r.checkpoint, VKEY)
            assert (origin, size) == (ORIGIN, r.tree_size)
            leaf = log_verifier.leaf_hash(r.leaf)
            assert leaf == p.leaf_hash  # the hash the payer got when it was posted
            assert log_verifier.verify_inclusion(leaf, r.index, size, r.proof, root)
            entry = json.loads(r.leaf)  # the leaf says what was signed and what moved
            assert entry["id"] == p.transfer_id and entry["order"]["amount"] > 0
            assert log_verifier.verify_inclusion(leaf, r.index, size, r.proof, bytes(32)) is False


def test_every_checkpoint_is_consistent_with_every_later_one(book: Book, engine: Engine) -> None:
    sealer = Sealer(engine, NODE_KEY, ORIGIN)
    people = [book.member(f"p{i}", 1_000) for i in range(2)]
    for n in range(9):
        book.ledger.transfer(book.payment(people[n % 2], people[(n + 1) % 2], 5))
        sealer.seal_all()
    with book.ledger.reading() as conn:
        notes = repo.checkpoint_notes(conn)
        assert len(notes) >= 9
        opened = [log_verifier.open_checkpoint(note, VKEY) for _, note in notes]
        for i, (_, old_size, old_root) in enumerate(opened):
            for _, new_size, new_root in opened[i + 1 :]:
                proof = consistency(conn, old_size, new_size)
                assert log_verifier.verify_consistency(
                    old_size, new_size, old_root, new_root, proof
                )
                if proof:
                    tampered = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
                    assert not log_verifier.verify_consistency(
                        old_size, new_size, old_root, new_root, tampered
                    )
