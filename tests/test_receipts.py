"""Receipts and consistency proofs from the stored log, checked by the independent verifier
(tests/log_verifier.py), which knows nothing of the ledger's code."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, delete

from ledger import repository as repo
from ledger.checkpoint import verifier_key
from ledger.errors import UnknownTransfer
from ledger.models import log_nodes
from ledger.posting import Posted
from ledger.proofs import BeyondLog, LogDamaged, NoCheckpoint, NotInTree, consistency, receipt
from ledger.sealer import Sealer
from tests import log_verifier
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book
from tests.test_tamper import attacker

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


def test_a_receipt_against_an_older_checkpoint_and_what_it_refuses(
    book: Book, engine: Engine
) -> None:
    sealer = Sealer(engine, NODE_KEY, ORIGIN)
    payer, payee = book.member("payer", 1_000), book.member("payee")
    early = book.ledger.transfer(book.payment(payer, payee, 1))
    sealer.seal_all()
    with book.ledger.reading() as conn:
        kept_size = repo.log_size(conn)
    late = [book.ledger.transfer(book.payment(payer, payee, n)) for n in (2, 3, 4, 5, 6)]
    sealer.seal_all()
    with book.ledger.reading() as conn:
        old = receipt(conn, early.transfer_id, kept_size)
        assert old is not None and old.tree_size == kept_size
        assert old.checkpoint == repo.checkpoint_note(conn, kept_size)
        _, size, root = log_verifier.open_checkpoint(old.checkpoint, VKEY)
        leaf = log_verifier.leaf_hash(old.leaf)
        assert log_verifier.verify_inclusion(leaf, old.index, size, old.proof, root)
        latest = receipt(conn, early.transfer_id)
        assert latest is not None and latest.tree_size > kept_size
        with pytest.raises(NotInTree):
            receipt(conn, late[0].transfer_id, kept_size)
        with pytest.raises(NoCheckpoint):
            receipt(conn, early.transfer_id, kept_size + 1)  # one round: no such checkpoint
        with pytest.raises(UnknownTransfer):
            receipt(conn, 987_654_321)
        with pytest.raises(BeyondLog):
            consistency(conn, 1, latest.tree_size + 1)


def test_a_missing_stored_node_is_named_not_a_key_error(book: Book, engine: Engine) -> None:
    sealer = Sealer(engine, NODE_KEY, ORIGIN)
    payer, payee = book.member("payer", 1_000), book.member("payee")
    paid = [book.ledger.transfer(book.payment(payer, payee, n + 1)) for n in range(8)]
    sealer.seal_all()
    with book.ledger.reading() as conn:
        size = repo.log_size(conn)
    with attacker(engine.url.render_as_string(hide_password=False)) as conn:
        conn.execute(delete(log_nodes).where(log_nodes.c.level == 2, log_nodes.c.idx == 0))
    with book.ledger.reading() as conn:
        at = {repo.leaf_index(conn, p.transfer_id): p.transfer_id for p in paid}
        # In a tree of 9 to 16 leaves, leaves 4-7 prove themselves with the subtree of
        # leaves 0-3 (the node deleted); leaves 8 and on with the one of leaves 0-7.
        assert 8 < size <= 16 and any(4 <= i < 8 for i in at) and max(at) >= 8
        for index, transfer_id in at.items():
            if 4 <= index < 8:
                with pytest.raises(LogDamaged, match="level 2, index 0"):
                    receipt(conn, transfer_id)
            elif index >= 8:
                assert receipt(conn, transfer_id) is not None
        with pytest.raises(LogDamaged):
            consistency(conn, 5, size)  # the first 5 leaves are leaves 0-3 and one more
