"""Receipts: what lets anyone check, without trusting the node, that a transfer is in the
log the node signed, and that the log only ever grew.

A receipt gives the transfer's leaf (its canonical JSON, see `leaves.py`), its position,
an RFC 6962 inclusion proof and the signed checkpoint the proof leads to. A consistency
proof links any two checkpoints. `tests/log_verifier.py` checks both with a page of code.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from ledger import repository as repo
from ledger.leaves import transfer_leaf
from ledger.merkle import consistency_proof, inclusion_proof
from ledger.sealer import StoredNodes


@dataclass(frozen=True)
class Receipt:
    transfer_id: int
    leaf: bytes  # the leaf's bytes: the signed order, its postings, its time
    index: int
    tree_size: int
    proof: list[bytes]
    checkpoint: str  # the signed note of size `tree_size`


def receipt(conn: Connection, transfer_id: int) -> Receipt | None:
    """The receipt of a transfer against the latest checkpoint; None until it is sealed."""
    index = repo.leaf_index(conn, transfer_id)
    latest = repo.latest_checkpoint(conn)
    if index is None or latest is None:
        return None
    sources, legs, _ = repo.leaf_sources(conn, [transfer_id], [])
    _, created, order_json, signature = sources[transfer_id]
    size = int(latest["tree_size"])
    return Receipt(
        transfer_id,
        transfer_leaf(transfer_id, created, order_json, signature, legs[transfer_id]),
        index,
        size,
        inclusion_proof(index, size, StoredNodes(conn)),
        latest["note"],
    )


def consistency(conn: Connection, old_size: int, new_size: int) -> list[bytes]:
    """The proof that the log of `new_size` leaves extends the one of `old_size`."""
    return consistency_proof(old_size, new_size, StoredNodes(conn))
