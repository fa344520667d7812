"""The sealer: appends committed transfers and key events to the Merkle log, after commit.

Payments never wait for the log. Each round takes what the log queue holds, in queue order,
computes the leaves and the new perfect subtrees, and signs a checkpoint for the new size;
leaves, nodes, checkpoint and the queue's removal commit together, so a crash mid-round
leaves the log as it was. One sealer runs at a time (an advisory lock on PostgreSQL, the
write lock on SQLite); a leaf's position is fixed the round it is sealed.

A round signs only with the key the log registers for the node, and only over a stored tree
it can read whole: otherwise it raises a `SealingStopped` that says what is wrong, and
signs nothing until a person puts it right.
"""

from __future__ import annotations

import logging
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
from ledger.merkle import HASH_SIZE, Frontier, leaf_hash
from ledger.posting import Posted
from ledger.signing import SigningKey, key_id

log = logging.getLogger(__name__)

MAX_KNOWN = 200_000  # leaf hashes kept for the next rounds; beyond, they are read back


class StoredNodes:
    """Perfect-subtree hashes as stored by the sealer (leaves are level 0). One missing, or
    not a hash, raises `LogTreeDamaged`: it is never recomputed from the leaves, which would
    hide whatever removed it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def perfect(self, level: int, index: int) -> bytes:
        found = repo.node_hash(self.conn, level, index)
        if found is None:
            raise LogTreeDamaged(level, index, "is missing")
        if len(found) != HASH_SIZE:
            raise LogTreeDamaged(level, index, f"holds {len(found)} bytes, not a hash")
        return found


class _Overtaken(Exception):
    pass


class SealingStopped(Exception):
    """Every round fails the same way until a person acts: nothing is signed meanwhile and
    the entries wait in the queue. The message says what is wrong."""


class DanglingQueueEntry(SealingStopped):
    """A log queue entry names a transfer or key event that is not stored. Only a hand
    writing to the database makes one (the ledger queues an entry in the same transaction
    as what it names, and history is never deleted): sealing stops, loudly, rather than
    sign a log that skips or invents an entry."""


class LogDamaged(Exception):
    """A part of the stored log that a proof or a round needs is missing or unreadable (a
    node, a leaf, the checkpoint over them); the message says which. Nothing can be proved
    or sealed over it until the log is repaired."""


class LogTreeDamaged(SealingStopped, LogDamaged):
    """A node of the stored tree is missing or malformed: only a hand on the database does
    that. Sealing stops (the next checkpoint is computed from these nodes), and so does every
    proof that needs the node."""

    def __init__(self, level: int, index: int, problem: str) -> None:
        super().__init__(
            f"the log's stored tree is damaged: node (level {level}, index {index}) {problem}; "
            "nothing is sealed or proved over it until it is restored. Run `sou audit` to see "
            "what else changed"
        )
        self.level, self.index = level, index


class UnregisteredNodeKey(SealingStopped):
    """The sealer's key is not a key the log registers for the node (not revoked): a
    checkpoint signed with it would make every receipt fail verification."""

    def __init__(self, found: str, registered: Iterable[str]) -> None:
        expected = ", ".join(sorted(registered)) or "none"
        super().__init__(
            f"the sealer's node key {found} is not the node key the log registers "
            f"({expected}): no checkpoint is signed with it"
        )
        self.found = found


@dataclass(frozen=True)
class Sealed:
    leaves: int  # appended this round
    size: int  # tree size after the round
    oldest_ms: int | None  # commit time of the oldest transfer sealed (for lag figures)
    note: str | None = None  # the checkpoint signed this round
    # Another sealer wrote first: this round wrote nothing, and what that sealer read of the
    # queue may have been less than this one read.
    overtaken: bool = False


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
        self._problem: str | None = None  # what the last background round failed on
        self._problem_lock = threading.Lock()
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

    def seal_in_background(self) -> Sealed | None:
        """A round as the background threads run it (the poster's, the sealer thread's), a
        few times a second: never raises. A problem is logged when it appears, not at every
        round, and again when it is over; meanwhile the entries wait in the queue."""
        try:
            sealed = self.seal()
        except Exception as exc:
            self._report(exc)
            return None
        if self._problem is not None:
            with self._problem_lock:
                was, self._problem = self._problem, None
            if was is not None:
                log.info("sealing works again (it had failed: %s)", was)
        return sealed

    def _report(self, exc: Exception) -> None:
        problem = f"{type(exc).__name__}: {exc}"
        with self._problem_lock:
            seen, self._problem = problem == self._problem, problem
        if seen:
            log.debug("sealing still fails: %s", problem)
        elif isinstance(exc, SealingStopped):
            log.error("sealing stopped: %s", exc)
        else:  # a database hiccup, or a bug: the queue waits for the next round
            log.exception("sealing failed; will retry")

    def seal_all(self) -> int:
        """Seal everything queued, rounds until one finds the queue empty (a round another
        sealer overtook is no sign of that); returns how many leaves this sealer appended."""
        total = 0
        while (sealed := self.seal()).leaves or sealed.overtaken:
            total += sealed.leaves
        return total

    def _round(self) -> Sealed:
        # Read and hash without holding the write lock (on SQLite, the whole database):
        # payments keep committing meanwhile. Then write, if no other sealer went first.
        with self.engine.connect().execution_options(sqlite_deferred=True) as conn:
            size, queued, node_keys = repo.sealing_inputs(conn, self.max_leaves)
            if self.node_key.public_key not in node_keys:
                raise UnregisteredNodeKey(self.node_key.key_id, map(key_id, node_keys))
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
        except (_Overtaken, IntegrityError) as exc:  # nothing was written
            self._frontier = None
            if isinstance(exc, IntegrityError) and not self._log_grew_past(size):
                raise  # no other sealer: a row that should not be there, say which
            log.debug("another sealer sealed the log past %d first", size)
            return Sealed(0, size, None, overtaken=True)
        self._frontier = frontier
        return Sealed(len(leaves), frontier.size, oldest, note)

    def _log_grew_past(self, size: int) -> bool:
        with self.engine.connect().execution_options(sqlite_deferred=True) as conn:
            return repo.log_size(conn) > size

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
