"""The independent verifier the tests check the node with: `ledger/verify.py`, the one a
resident runs (`python -m ledger.verify`), which imports nothing else of Sou."""

from ledger.verify import (
    key_id,
    leaf_hash,
    node_hash,
    open_checkpoint,
    open_note,
    read_verifier_key,
    sha256,
    unbase64,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "key_id",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "read_verifier_key",
    "sha256",
    "unbase64",
    "verify_consistency",
    "verify_inclusion",
]
