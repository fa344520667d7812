"""The sealer: appends committed transfers and key events to the Merkle log, after commit.

Payments never wait for the log. Each round takes what the log queue holds, in queue order,
computes the leaves and the new perfect subtrees, and signs a checkpoint for the new size;
leaves, nodes, checkpoint and the queue's removal commit together, so a crash mid-round
leaves the log as it was. One sealer runs at a time (an advisory lock on PostgreSQL, the
write lock on SQLite); a leaf's position is fixed the round it is sealed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from ledger import repository as repo
from ledger.checkpoint import sign_checkpoint
from ledger.leaves import key_event_leaf, transfer_leaf
from ledger.merkle import Frontier, leaf_hash
from ledger.signing import SigningKey

SEALER_LOCK = 0x50550001  # PostgreSQL advisory lock id held by the sealing transaction


class StoredNodes:
    """Perfect-subtree hashes as stored by the sealer (leaves are level 0)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def perfect(self, level: int, index: int) -> bytes:
        found = repo.node_hash(self.conn, level, index)
        if found is None:
            raise KeyError((level, index))
        return found


@dataclass(frozen=True)
class Sealed:
    leaves: int  # appended this round
    size: int  # tree size after the round
    oldest_ms: int | None  # commit time of the oldest transfer sealed (for lag figures)
    note: str | None = None  # the checkpoint signed this round


class Sealer:
    def __init__(self, engine: Engine, node_key: SigningKey, origin: str, *,
                 max_leaves: int = 20_000, clock: Callable[[], float] = time.time,
                 on_checkpoint: Callable[[Sealed], None] | None = None) -> None:
        self.engine = engine
        self.on_checkpoint = on_checkpoint  # e.g. keep the latest checkpoint off the database
        self.node_key = node_key
        self.origin = origin
        self.max_leaves = max_leaves
        self.clock = clock
        self._frontier: Frontier | None = None

    def seal(self) -> Sealed:
        """One round; returns what it sealed (possibly nothing)."""
        try:
            with self.engine.begin() as conn:
                sealed = self._round(conn)
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

    def _round(self, conn: Connection) -> Sealed:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": SEALER_LOCK})
        latest = repo.latest_checkpoint(conn)
        size = 0 if latest is None else int(latest["tree_size"])
        if self._frontier is None or self._frontier.size != size:
            self._frontier = Frontier.from_nodes(size, StoredNodes(conn))
        queued = repo.queued(conn, self.max_leaves)
        if not queued:
            return Sealed(0, size, None)
        leaves, nodes, oldest = self._append(conn, queued, self._frontier)
        root = self._frontier.root()
        note = sign_checkpoint(self.origin, self._frontier.size, root, self.origin,
                               self.node_key.nacl_key)
        repo.insert_leaves(conn, leaves, nodes)
        repo.insert_checkpoint(conn, {"tree_size": self._frontier.size, "root": root,
                                      "note": note, "created_ms": int(self.clock() * 1000)})
        repo.dequeue(conn, [q["id"] for q in queued])
        return Sealed(len(leaves), self._frontier.size, oldest, note)

    def _append(self, conn: Connection, queued: list[Any], frontier: Frontier
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int | None]:
        t_rows, legs, e_rows = repo.leaf_sources(
            conn, [q["transfer_id"] for q in queued if q["transfer_id"] is not None],
            [q["key_event_id"] for q in queued if q["key_event_id"] is not None])
        leaves: list[dict[str, Any]] = []
        nodes: list[dict[str, Any]] = []
        oldest: int | None = None
        for q in queued:
            if q["transfer_id"] is not None:
                t = t_rows[q["transfer_id"]]
                data = transfer_leaf(t["id"], t["created_ms"], t["order_json"],
                                     t["signature"], legs[t["id"]])
                oldest = t["created_ms"] if oldest is None else min(oldest, t["created_ms"])
            else:
                e = e_rows[q["key_event_id"]]
                data = key_event_leaf(e["id"], e["created_ms"], e["event_json"], e["signature"])
            digest = leaf_hash(data)
            leaves.append({"idx": frontier.size, "transfer_id": q["transfer_id"],
                           "key_event_id": q["key_event_id"], "hash": digest})
            nodes.extend({"level": level, "idx": index, "hash": h}
                         for level, index, h in frontier.append(digest) if level > 0)
        return leaves, nodes, oldest
