"""Receipts: what lets anyone check, without trusting the node, that a transfer is in the
log the node signed, and that the log only ever grew.

A receipt gives the transfer's leaf (its canonical JSON, see `leaves.py`), its position,
an RFC 6962 inclusion proof and the signed checkpoint the proof leads to: the latest, or an
older one the caller kept. A consistency proof links any two sizes of the log.
`tests/log_verifier.py` checks both with a page of code.

A proof is read from the stored tree (`log_leaves`, `log_nodes`). A node missing from it,
or not a hash, can only be the work of a hand on the database: `LogDamaged` says which, and
`sou audit` tells the whole story.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from ledger import repository as repo
from ledger.errors import UnknownTransfer
from ledger.leaves import transfer_leaf
from ledger.merkle import consistency_proof, inclusion_proof
from ledger.sealer import LogDamaged as LogDamaged  # what proofs raise, with their own
from ledger.sealer import StoredNodes


class NoCheckpoint(Exception):
    """The log never signed a checkpoint of this size."""

    def __init__(self, tree_size: int) -> None:
        super().__init__(f"the log has no checkpoint of {tree_size} leaves")
        self.tree_size = tree_size


class NotInTree(Exception):
    """The transfer entered the log after the tree of this size."""

    def __init__(self, index: int, tree_size: int) -> None:
        super().__init__(f"leaf {index} is not in the tree of {tree_size} leaves")
        self.index, self.tree_size = index, tree_size


class BeyondLog(Exception):
    """A size larger than the log's latest checkpoint: nothing is signed that far yet."""

    def __init__(self, tree_size: int, latest: int) -> None:
        super().__init__(f"the log has signed {latest} leaves, not {tree_size}")
        self.tree_size, self.latest = tree_size, latest


@dataclass(frozen=True)
class Receipt:
    transfer_id: int
    leaf: bytes  # the leaf's bytes: the signed order, its postings, its time
    index: int
    tree_size: int
    proof: list[bytes]
    checkpoint: str  # the signed note of size `tree_size`


def receipt(conn: Connection, transfer_id: int, tree_size: int | None = None) -> Receipt | None:
    """The receipt of a transfer against the checkpoint of `tree_size` leaves (the latest if
    None); None until it is sealed. Raises UnknownTransfer, NoCheckpoint, NotInTree and
    LogDamaged."""
    stored, index, queued = repo.leaf_state(conn, transfer_id)
    if not stored:
        raise UnknownTransfer(f"no transfer {transfer_id}", transfer_id=transfer_id)
    if index is None:
        if queued:
            return None
        raise LogDamaged(f"the leaf of transfer {transfer_id} is missing")
    size, note = _checkpoint(conn, tree_size)
    if index >= size:
        if tree_size is None:  # the leaf was written with a checkpoint covering it
            raise LogDamaged(f"no checkpoint covers leaf {index}")
        raise NotInTree(index, size)
    sources, legs, _ = repo.leaf_sources(conn, [transfer_id], [])
    _, created, order_json, signature = sources[transfer_id]
    return Receipt(
        transfer_id,
        transfer_leaf(transfer_id, created, order_json, signature, legs[transfer_id]),
        index,
        size,
        inclusion_proof(index, size, StoredNodes(conn)),
        note,
    )


def _checkpoint(conn: Connection, tree_size: int | None) -> tuple[int, str]:
    if tree_size is None:
        latest = repo.latest_checkpoint(conn)
        if latest is None:  # a leaf but no checkpoint: they are written together
            raise LogDamaged("the log has leaves but no checkpoint")
        return int(latest["tree_size"]), str(latest["note"])
    note = repo.checkpoint_note(conn, tree_size)
    if note is None:
        raise NoCheckpoint(tree_size)
    return tree_size, note


def consistency(conn: Connection, old_size: int, new_size: int) -> list[bytes]:
    """The proof that the log of `new_size` leaves extends the one of `old_size`
    (0 <= old_size <= new_size). Raises BeyondLog past the latest checkpoint, LogDamaged."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    latest = repo.log_size(conn)
    if new_size > latest:
        raise BeyondLog(new_size, latest)
    return consistency_proof(old_size, new_size, StoredNodes(conn))
