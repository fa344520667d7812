"""The sealer: appends committed transfers and key events to the Merkle log, after commit.

Payments never wait for the log. Each round takes what the log queue holds, in queue order,
computes the leaves and the new perfect subtrees, and signs a checkpoint for the new size;
leaves, nodes, checkpoint and the queue's removal commit together, so a crash mid-round
leaves the log as it was. One sealer runs at a time (an advisory lock on PostgreSQL, the
write lock on SQLite); a leaf's position is fixed the round it is sealed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ledger import repository as repo
from ledger.checkpoint import sign_checkpoint
from ledger.leaves import key_event_leaf, transfer_leaf
from ledger.merkle import Frontier, leaf_hash
from ledger.posting import Posted
from ledger.signing import SigningKey

MAX_KNOWN = 200_000  # leaf hashes kept for the next rounds; beyond, they are read back


class StoredNodes:
    """Perfect-subtree hashes as stored by the sealer (leaves are level 0)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def perfect(self, level: int, index: int) -> bytes:
        found = repo.node_hash(self.conn, level, index)
        if found is None:
            raise KeyError((level, index))
        return found


class _Overtaken(Exception):
    pass


class DanglingQueueEntry(Exception):
    """A log queue entry names a transfer or key event that is not stored. Only a hand
    writing to the database makes one (the ledger queues an entry in the same transaction
    as what it names, and history is never deleted): sealing stops, loudly, rather than
    sign a log that skips or invents an entry."""


@dataclass(frozen=True)
class Sealed:
    leaves: int  # appended this round
    size: int  # tree size after the round
    oldest_ms: int | None  # commit time of the oldest transfer sealed (for lag figures)
    note: str | None = None  # the checkpoint signed this round


class Sealer:
    def __init__(
        self,
        engine: Engine,
        node_key: SigningKey,
        origin: str,
        *,
        max_leaves: int = 20_000,
        clock: Callable[[], float] = time.time,
        on_checkpoint: Callable[[Sealed], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_checkpoint = on_checkpoint  # e.g. keep the latest checkpoint off the database
        self.node_key = node_key
        self.origin = origin
        self.max_leaves = max_leaves
        self.clock = clock
        self._frontier: Frontier | None = None
        self._one_round_at_a_time = threading.Lock()  # poster and sealer thread share it
        # transfer id -> (leaf hash, created_ms), handed over by the poster
        self._known: dict[int, tuple[bytes, int]] = {}

    def expect(self, posted: Iterable[Posted]) -> None:
        """Transfers this process's poster just committed, with their leaf hashes: the round
        that seals them need not read them back (the audit recomputes every leaf anyway)."""
        if len(self._known) < MAX_KNOWN:
            self._known.update(
                (p.transfer_id, (p.leaf_hash, p.created_ms))
                for p in posted
                if p.leaf_hash is not None
            )

    def seal(self) -> Sealed:
        """One round; returns what it sealed (possibly nothing)."""
        with self._one_round_at_a_time:
            try:
                sealed = self._round()
            except BaseException:
                self._frontier = None  # the in-memory edge may be ahead of the database
                raise
        if sealed.note is not None and self.on_checkpoint is not None:
            self.on_checkpoint(sealed)  # only once committed
        return sealed

    def seal_all(self) -> int:
        total = 0
        while (sealed := self.seal()).leaves:
            total += sealed.leaves
        return total

    def _round(self) -> Sealed:
        # Read and hash without holding the write lock (on SQLite, the whole database):
        # payments keep committing meanwhile. Then write, if no other sealer went first.
        with self.engine.connect().execution_options(sqlite_deferred=True) as conn:
            size, queued = repo.log_size_and_queue(conn, self.max_leaves)
            if self._frontier is None or self._frontier.size != size:
                self._frontier = Frontier.from_nodes(size, StoredNodes(conn))
            if not queued:
                return Sealed(0, size, None)
            frontier = Frontier(size, self._frontier.hashes)
            leaves, nodes, oldest = self._append(conn, queued, frontier)
        root = frontier.root()
        note = sign_checkpoint(
            self.origin, frontier.size, root, self.origin, self.node_key.nacl_key, previous=size
        )
        checkpoint = {
            "tree_size": frontier.size,
            "root": root,
            "note": note,
            "created_ms": int(self.clock() * 1000),
        }
        try:
            with self.engine.begin() as conn:
                if not repo.seal(conn, size, [q[0] for q in queued], leaves, nodes, checkpoint):
                    raise _Overtaken
        except (_Overtaken, IntegrityError):  # another sealer sealed these: nothing written
            self._frontier = None
            return Sealed(0, size, None)
        self._frontier = frontier
        return Sealed(len(leaves), frontier.size, oldest, note)

    def _append(
        self, conn: Connection, queued: list[Any], frontier: Frontier
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int | None]:
        known = self._known
        oldest: int | None = None
        t_rows, legs, e_rows = repo.leaf_sources(
            conn,
            [t for _, t, _ in queued if t is not None and t not in known],
            [e for _, _, e in queued if e is not None],
        )
        for qid, tid, eid in queued:
            stored = (tid in known or tid in t_rows) if tid is not None else eid in e_rows
            if not stored:
                what = f"transfer {tid}" if tid is not None else f"key event {eid}"
                raise DanglingQueueEntry(
                    f"log queue entry {qid} names {what}, which is not stored; "
                    "nothing is sealed until that entry is removed"
                )
        leaves: list[dict[str, Any]] = []
        nodes: list[dict[str, Any]] = []
        for _, tid, eid in queued:
            if tid in known:
                digest, created = known.pop(tid)
            elif tid is not None:
                _, created, order_json, signature = t_rows[tid]
                digest = leaf_hash(transfer_leaf(tid, created, order_json, signature, legs[tid]))
            else:
                digest = leaf_hash(key_event_leaf(*e_rows[eid]))
                created = None
            if created is not None:
                oldest = created if oldest is None else min(oldest, created)
            leaves.append(
                {
                    "idx": frontier.size,
                    "transfer_id": tid,
                    "key_event_id": eid,
                    "hash": digest,
                }
            )
            nodes.extend(
                {"level": level, "idx": index, "hash": h}
                for level, index, h in frontier.append(digest)
                if level > 0
            )
        return leaves, nodes, oldest
