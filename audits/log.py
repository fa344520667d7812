"""Audit of the Merkle log: every leaf against what it records, every stored inner node
against the leaves, every checkpoint's root and signature, and the checkpoints kept
outside the database.

The log is walked once, in leaf order and a chunk at a time, with a `Frontier`: it holds
only the roots of the perfect subtrees so far, so the audit's memory does not grow with
the log. Each inner node the walk completes is compared with the stored one, and each
checkpoint with the root the walk reaches at its size. The walk goes over the stored leaf
hashes while the workers check the transfers, each worker comparing its transfers' leaves
with the stored ones: only when some leaf differs is the log walked a second time, over
the leaves its entries give, which is the tree the audit judges."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from audits.checks import Transfers
from audits.report import Arg, Finding, Report, finding
from ledger import bulk
from ledger.checkpoint import CheckpointError, open_checkpoint
from ledger.merkle import HASH_SIZE, Frontier, parents

CHUNK = 1 << 14  # leaves read per query
MAX_GAP = 1 << 12  # a hole wider than this ends the walk: nothing after it can be placed
MAX_NAMED_NODES = 10
NO_LEAF = bytes(HASH_SIZE)  # where a leaf is missing, as the sealer never writes one
Leaf = tuple[int, int | None, int | None, bytes]  # idx, transfer, key event, hash


@dataclass
class Place:
    """What each leaf's entry is checked against. Transfers with ids in `checked` are the
    workers' to compare; one a previous audit checked (id up to `after`) is recomputed by
    `earlier_leaf`; a key event's leaf is in `event_leaves`."""

    event_leaves: dict[int, bytes]
    checked: tuple[int, int] | None
    after: int | None = None
    earlier_leaf: Callable[[int], bytes | None] | None = None


@dataclass
class Entries:
    """What the first walk found of the leaves themselves."""

    findings: list[Finding] = field(default_factory=list)
    flagged: set[int] = field(default_factory=set)  # positions of leaves found wrong
    resealed: dict[int, bytes] = field(default_factory=dict)  # idx -> the leaf its entry gives
    sealed_events: set[int] = field(default_factory=set)


class LogAudit:
    """The log checked from `start` (an empty frontier: the whole log), in the audit's
    snapshot: `walk` while the transfers are being checked, `finish` once they are."""

    def __init__(
        self,
        conn: Connection,
        start: Frontier,
        origin: str,
        verifier: str,
        witnessed: Sequence[str],
        place: Place,
    ) -> None:
        self.conn, self.start, self.place = conn, start, place
        self.origin, self.verifier, self.witnessed = origin, verifier, witnessed
        self.full = start.size == 0
        self.entries = Entries()
        self.sizes: set[int] = set()  # of the witnessed checkpoints: roots kept there
        for note in witnessed:
            with suppress(CheckpointError):  # `_check_witnessed` says why
                self.sizes.add(open_checkpoint(note, verifier, origin=origin).size)
        self.tree: Tree | None = None

    def walk(self, poll: Callable[[], None]) -> None:
        """The walk over the stored leaf hashes, each leaf's entry checked on the way."""
        self.tree = self._walk({}, self.entries, poll)

    def finish(self, transfers: Transfers, report: Report) -> Frontier:
        """Everything reported, with what the workers found of the transfers' leaves; the
        frontier of the tree, for the next audit to resume from."""
        assert self.tree is not None, "walk first"
        entries = self.entries
        entries.flagged.update(transfers.flagged)
        tree = self.tree
        if entries.resealed or transfers.resealed:
            tree = self._walk({**entries.resealed, **transfers.resealed}, None, lambda: None)
        report.findings.extend(entries.findings)
        size = tree.frontier.size
        report.leaves = size
        if self.full:
            _impossible_nodes(self.conn, size, tree, report)
        _report_nodes(self.conn, tree, entries.flagged, report)
        report.checkpoints += tree.checkpoints
        report.findings.extend(tree.findings)
        stored = None if not self.full else (lambda n: _has_checkpoint(self.conn, n))
        _check_witnessed(
            self.witnessed,
            self.origin,
            self.verifier,
            size,
            lambda n: tree.roots.get(n) if n > self.start.size or self.full else None,
            stored,
            report,
        )
        _unsealed(self.conn, self.place, entries, transfers, self.full, report)
        return tree.frontier

    def _walk(
        self, override: dict[int, bytes], entries: Entries | None, poll: Callable[[], None]
    ) -> Tree:
        tree = Tree(self.conn, self.start, self.origin, self.verifier, self.sizes, self.full)
        cursor = self.start.size - 1 if not self.full else -(1 << 63)
        while rows := bulk.rows(
            self.conn,
            "SELECT idx, transfer_id, key_event_id, hash FROM log_leaves "
            f"WHERE idx > {cursor:d} ORDER BY idx LIMIT {CHUNK:d}",
            binary=True,
        ):
            cursor = rows[-1][0]
            placed = _positions(tree.frontier.size, rows)
            tree.begin(placed[-1][0] + 1 if placed else tree.frontier.size)
            if _whole_subtree(tree.frontier.size, placed):
                tree.append_subtree(self._leaves(placed, override, entries))
                poll()
                continue
            for position, (idx, tid, eid, digest) in placed:
                while tree.frontier.size < position:  # a hole: positions kept, flagged
                    gap = tree.frontier.size
                    if entries is not None:
                        entries.findings.append(
                            finding("log", "leaf {idx} is missing", leaf=gap, idx=gap)
                        )
                        entries.flagged.add(gap)
                    tree.append(NO_LEAF)
                digest = bytes(digest)
                if entries is not None:
                    self._check_entry(position, idx, tid, eid, digest, entries)
                leaf = override.get(idx, digest)
                tree.append(leaf if len(leaf) == HASH_SIZE else NO_LEAF)
            poll()
            if len(placed) < len(rows):  # a hole too wide to walk over
                gap = tree.frontier.size
                if entries is not None:
                    entries.findings.append(
                        finding(
                            "log",
                            "leaves {first}..{last} are missing",
                            leaf=gap,
                            first=gap,
                            last=rows[len(placed)][0] - 1,
                        )
                    )
                    entries.flagged.add(gap)
                break
        tree.end()
        return tree

    def _leaves(
        self,
        placed: list[tuple[int, Leaf]],
        override: dict[int, bytes],
        entries: Entries | None,
    ) -> list[bytes]:
        """The leaves of a run without holes, each entry checked as in the walk leaf by leaf."""
        low, high = self.place.checked or (1, 0)
        leaves = []
        for position, (idx, tid, eid, digest) in placed:
            digest = bytes(digest)
            # Most leaves are transfers the workers compare: nothing to check here.
            if entries is not None and (eid is not None or tid is None or not low <= tid <= high):
                self._check_entry(position, idx, tid, eid, digest, entries)
            leaf = override.get(idx, digest)
            leaves.append(leaf if len(leaf) == HASH_SIZE else NO_LEAF)
        return leaves

    def _check_entry(
        self,
        position: int,
        idx: int,
        tid: int | None,
        eid: int | None,
        digest: bytes,
        entries: Entries,
    ) -> None:
        place = self.place
        if (tid is None) == (eid is None):
            entries.findings.append(_named_twice_or_never(position, tid, eid))
            entries.flagged.add(position)
        if tid is not None:
            if place.checked is not None and place.checked[0] <= tid <= place.checked[1]:
                return  # its worker compares it
            earlier = place.earlier_leaf
            known = place.after is not None and tid <= place.after and earlier is not None
            expected = earlier(tid) if known and earlier is not None else None
        else:
            expected = place.event_leaves.get(eid) if eid is not None else None
            if eid is not None:
                entries.sealed_events.add(eid)
        # Both None: the leaf names nothing (reported above), said as the code always did.
        entry: dict[str, Arg] = {"transfer": tid} if tid is not None else {"event": str(eid)}
        named: dict[str, Any] = {"leaf": position, "idx": position, "transfer_id": tid, **entry}
        if expected is None:
            entries.findings.append(
                finding("log", "leaf {idx}: transfer {transfer} is missing", **named)
                if tid is not None
                else finding("log", "leaf {idx}: key event {event} is missing", **named)
            )
            entries.flagged.add(position)
        elif expected != digest:
            entries.findings.append(
                finding(
                    "log", "leaf {idx}: transfer {transfer} differs from what was sealed", **named
                )
                if tid is not None
                else finding(
                    "log", "leaf {idx}: key event {event} differs from what was sealed", **named
                )
            )
            entries.flagged.add(position)
            entries.resealed[idx] = expected


def _whole_subtree(size: int, placed: list[tuple[int, Leaf]]) -> bool:
    """Whether `placed` fills the aligned subtree of CHUNK leaves starting at `size` (the
    positions rise one by one, so the first and last tell)."""
    return (
        len(placed) == CHUNK
        and size % CHUNK == 0
        and placed[0][0] == size
        and placed[-1][0] == size + CHUNK - 1
    )


def _positions(size: int, rows: list[Leaf]) -> list[tuple[int, Leaf]]:
    """Where each stored leaf stands in the tree: at its idx, past any hole before it; a
    leaf whose idx is taken or below zero, next. Stops before a hole wider than MAX_GAP."""
    run = range(size, size + len(rows))
    if [row[0] for row in rows] == list(run):  # as the sealer writes them: each at its idx
        return list(zip(run, rows, strict=True))
    placed = []
    for row in rows:
        position = max(size, row[0])
        if position - size > MAX_GAP:
            break
        placed.append((position, row))
        size = position + 1
    return placed


class Tree:
    """The tree a walk builds, leaf by leaf: the stored inner nodes it completes compared
    with its own, the signed checkpoints with its root at their sizes. Nodes and
    checkpoints are read a chunk of leaves at a time, before the chunk's leaves."""

    def __init__(
        self,
        conn: Connection,
        start: Frontier,
        origin: str,
        verifier: str,
        sizes: set[int],
        full: bool,
    ) -> None:
        self.conn, self.origin, self.verifier, self.full = conn, origin, verifier, full
        self.frontier = Frontier(start.size, start.hashes)
        self.start = start.size
        self.sizes = sizes  # where the roots are kept
        self.roots: dict[int, bytes] = {}
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.signed: dict[int, tuple[bytes, str]] = {}  # size -> stored root, note
        self.read_to = start.size - 1  # checkpoints of sizes up to here are read
        self.differing: list[tuple[int, int]] = []  # leaf ranges of differing stored nodes
        self.missing: list[tuple[int, int]] = []  # (level, idx), the first MAX_NAMED_NODES
        self.missing_count = 0
        self.findings: list[Finding] = []  # on the checkpoints
        self.checkpoints = 0
        self.latest = 0  # the largest checkpoint size seen
        self.intact = start.size  # the largest one whose tree the log still has, before a break
        self.broken = False
        self.previous: int | None = None  # the size of the checkpoint before, as stored
        self._reached()

    def begin(self, end: int) -> None:
        """The stored nodes and checkpoints the leaves up to position `end` complete."""
        self.nodes = _stored_nodes(self.conn, self.frontier.size, end)
        self.signed = _checkpoints(self.conn, self.read_to, end)
        self.read_to = max(self.read_to, end)
        self._reached()

    def append(self, leaf: bytes) -> None:
        for level, index, digest in self.frontier.append(leaf)[1:]:
            self._compare(level, index, digest)
        self._reached()

    def append_subtree(self, leaves: list[bytes]) -> None:
        """Leaves filling the perfect subtree that starts at the tree's size: hashed a level
        at a time, with the same comparisons, in the same order, as leaf by leaf."""
        first, top = self.frontier.size, len(leaves).bit_length() - 1
        levels = [leaves]
        for _ in range(top):
            levels.append(parents(levels[-1]))
        wrong = []
        for level in range(1, top + 1):
            base, stored = first >> level, self.nodes
            for offset, digest in enumerate(levels[level]):
                if stored.get((level, base + offset)) != digest:
                    wrong.append((level, base + offset, digest))
        # As appending would: by the leaf that completes each node, then upwards.
        for level, index, digest in sorted(wrong, key=lambda n: ((n[1] + 1) << n[0], n[0])):
            self._compare(level, index, digest)
        before, end = self.frontier.hashes, first + (1 << top)
        for size in sorted(s for s in {*self.signed, *self.sizes} if first < s < end):
            hashes, done = list(before), 0
            for level in range(top - 1, -1, -1):  # the perfect subtrees of the leaves so far
                if (size - first) >> level & 1:
                    hashes.append(levels[level][done >> level])
                    done += 1 << level
            self._reached_at(size, Frontier(size, hashes).root())
        for level, index, digest in self.frontier.append_perfect(top, levels[top][0])[1:]:
            self._compare(level, index, digest)
        self._reached()

    def _compare(self, level: int, index: int, digest: bytes) -> None:
        """A node the walk completed, against the stored one."""
        stored = self.nodes.get((level, index))
        if stored == digest:
            return
        if stored is None:
            self.missing_count += 1
            if len(self.missing) < MAX_NAMED_NODES:
                self.missing.append((level, index))
        else:
            self.differing.append((index << level, ((index + 1) << level) - 1))

    def end(self) -> None:
        """The checkpoints signed beyond the log's last leaf."""
        size = self.frontier.size
        self.signed = _checkpoints(self.conn, self.read_to, None)
        self._reached()  # the one at the log's size, when no leaf came after the start
        for tree_size, (stored_root, note) in sorted(self.signed.items()):
            self._check_checkpoint(tree_size, stored_root, note, None)
        if self.latest != size and (self.full or size > self.start):
            self.findings.append(
                finding(
                    "checkpoint",
                    "the log has {size} leaves but the latest checkpoint signs {latest}",
                    size=size,
                    latest=self.latest,
                )
            )

    def _reached(self) -> None:
        size = self.frontier.size
        if size in self.signed or size in self.sizes:
            self._reached_at(size, self.frontier.root())

    def _reached_at(self, size: int, root: bytes) -> None:
        """The tree's root at `size`: kept for the witnessed checkpoints, checked against
        the stored one."""
        if size in self.sizes:
            self.roots[size] = root
        if size in self.signed:
            stored_root, note = self.signed.pop(size)
            self._check_checkpoint(size, stored_root, note, root)

    def _check_checkpoint(
        self, tree_size: int, stored_root: bytes, text: str, root: bytes | None
    ) -> None:
        """`root`: the tree's at `tree_size`; None when the log is smaller."""
        self.checkpoints += 1
        self.latest = max(self.latest, tree_size)
        previous, self.previous = self.previous, tree_size
        try:
            note = open_checkpoint(text, self.verifier, origin=self.origin)
        except CheckpointError as exc:
            self.findings.append(
                finding("checkpoint", "checkpoint {size}: {reason}", size=tree_size, **_reason(exc))
            )
            return
        if (
            note.previous
            and note.previous != previous
            and not _has_checkpoint(self.conn, note.previous)
        ):
            self.findings.append(
                finding(
                    "checkpoint",
                    "checkpoint {size} was signed after checkpoint {previous}, which is no longer "
                    "stored",
                    size=tree_size,
                    previous=note.previous,
                )
            )
        if note.size != tree_size or note.root != stored_root:
            self.findings.append(
                finding(
                    "checkpoint",
                    "checkpoint {size}: stored size or root differs from the signed note",
                    size=tree_size,
                )
            )
        elif root is None or root != note.root:
            # The first broken checkpoint bounds where history changed.
            self.findings.append(
                finding(
                    "checkpoint",
                    "checkpoint {size}: the log no longer has the tree this checkpoint signed",
                    size=tree_size,
                )
                if self.broken
                else finding(
                    "checkpoint",
                    "checkpoint {size}: the log no longer has the tree this checkpoint signed "
                    "(a change among leaves {first}..{last})",
                    size=tree_size,
                    first=self.intact,
                    last=tree_size - 1,
                )
            )
            self.broken = True
        elif not self.broken:
            self.intact = tree_size


def _stored_nodes(conn: Connection, first: int, end: int) -> dict[tuple[int, int], bytes]:
    """The stored inner nodes whose last leaf is at a position in first..end-1."""
    ranges = []
    level = 1
    while 1 << level <= end:
        low, high = ((first + (1 << level)) >> level) - 1, (end >> level) - 1
        if low <= high:
            ranges.append(f"(level = {level:d} AND idx BETWEEN {low:d} AND {high:d})")
        level += 1
    if not ranges:
        return {}
    rows = bulk.rows(
        conn, "SELECT level, idx, hash FROM log_nodes WHERE " + " OR ".join(ranges), binary=True
    )
    return {(level, idx): bytes(digest) for level, idx, digest in rows}


def _checkpoints(conn: Connection, after: int, upto: int | None) -> dict[int, tuple[bytes, str]]:
    bound = "" if upto is None else f" AND tree_size <= {upto:d}"
    return {
        size: (bytes(stored_root), note)
        for size, stored_root, note in bulk.rows(
            conn,
            f"SELECT tree_size, root, note FROM checkpoints WHERE tree_size > {after:d}{bound}",
        )
    }


def _has_checkpoint(conn: Connection, size: int) -> bool:
    return bool(bulk.rows(conn, f"SELECT 1 FROM checkpoints WHERE tree_size = {size:d}"))


def _impossible_nodes(conn: Connection, size: int, tree: Tree, report: Report) -> None:
    """Stored nodes where no tree of `size` leaves has one: at an impossible position, or
    over leaves the log no longer has (it was sealed further, then cut)."""
    beyond = size
    for level, idx in bulk.rows(
        conn,
        "SELECT level, idx FROM log_nodes WHERE level < 1 OR idx < 0 OR level > 62 "
        f"OR idx >= ({size:d} >> level)",
    ):
        if level < 1 or idx < 0:
            report.findings.append(
                finding(
                    "log",
                    "the log stores a node at level {level}, index {index}, where no tree has one",
                    level=level,
                    index=idx,
                )
            )
        else:
            beyond = max(beyond, min((idx + 1) << level, 1 << 63))
    if beyond > size:
        report.findings.append(
            finding(
                "log",
                "the log was sealed up to at least leaf {last} but has only {size} leaves",
                leaf=size,
                last=beyond - 1,
                size=size,
            )
        )


def _report_nodes(conn: Connection, tree: Tree, flagged: set[int], report: Report) -> None:
    """Stored inner nodes must be those of the leaves: a difference shows reordering.

    Only the smallest differing subtrees not already explained by a changed or missing
    leaf are reported, so one altered row gives one finding, not one per tree level."""
    for level, idx in tree.missing:
        first, last = idx << level, ((idx + 1) << level) - 1
        report.findings.append(
            finding(
                "log",
                "the log's stored node at level {level}, index {index} (over leaves "
                "{first}..{last}) is missing: receipts and sealing need it",
                leaf=first,
                level=level,
                index=idx,
                first=first,
                last=last,
            )
        )
    if tree.missing_count > MAX_NAMED_NODES:
        report.findings.append(
            finding(
                "log",
                "{count} more of the log's stored nodes are missing",
                count=tree.missing_count - MAX_NAMED_NODES,
            )
        )
    wrong = sorted(flagged)
    reported: list[tuple[int, int]] = []
    for first, last in sorted(tree.differing, key=lambda r: r[1] - r[0]):
        at = bisect_left(wrong, first)
        if (at < len(wrong) and wrong[at] <= last) or any(
            first <= a and b <= last for a, b in reported
        ):
            continue
        reported.append((first, last))
        inside = [
            tid
            for (tid,) in bulk.rows(
                conn,
                f"SELECT transfer_id FROM log_leaves WHERE idx BETWEEN {first:d} AND {last:d} "
                "AND transfer_id IS NOT NULL ORDER BY idx LIMIT 7",
            )
        ]
        named = ", ".join(map(str, inside[:6])) + (", ..." if len(inside) > 6 else "")
        where: dict[str, Any] = {"first": first, "last": last}
        one = inside[0] if len(inside) == 1 else None
        report.findings.append(
            finding(
                "log",
                "the log's leaves {first}..{last} (transfers {transfers}) are not in the order "
                "they were sealed",
                transfers=named,
                transfer_id=one,
                leaf=first,
                **where,
            )
            if named
            else finding(
                "log",
                "the log's leaves {first}..{last} (transfers none) are not in the order they "
                "were sealed",
                leaf=first,
                **where,
            )
        )


def _unsealed(
    conn: Connection,
    place: Place,
    entries: Entries,
    transfers: Transfers,
    full: bool,
    report: Report,
) -> None:
    """Every transfer checked is in the log or waiting in its queue, and so is every key
    event (a full audit); the queue names only stored entries not in the log yet."""
    queued = bulk.rows(conn, "SELECT transfer_id, key_event_id FROM log_queue")
    queued_t = {tid for tid, _ in queued if tid is not None}
    queued_e = {eid for tid, eid in queued if tid is None and eid is not None}
    report.unsealed = len(queued)
    for tid in sorted(set(transfers.unsealed) - queued_t):
        report.findings.append(
            finding(
                "log",
                "transfer {transfer} is neither in the log nor waiting for it",
                transfer=tid,
                transfer_id=tid,
            )
        )
    if full:
        for eid in sorted(place.event_leaves.keys() - entries.sealed_events - queued_e):
            report.findings.append(finding("log", "key event {event} is not in the log", event=eid))
    # An entry waiting for the log that names nothing stored: the sealer refuses to seal
    # past it (DanglingQueueEntry), so the log stops growing until someone removes it.
    for (tid,) in bulk.rows(
        conn,
        "SELECT q.transfer_id FROM log_queue q WHERE q.transfer_id IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM transfers t WHERE t.id = q.transfer_id) ORDER BY q.transfer_id",
    ):
        report.findings.append(
            finding(
                "log",
                "the log queue names transfer {transfer}, which is not stored: sealing is stuck",
                transfer=tid,
                transfer_id=tid,
            )
        )
    for eid in sorted(queued_e - place.event_leaves.keys()):
        report.findings.append(
            finding(
                "log",
                "the log queue names key event {event}, which is not stored: sealing is stuck",
                event=eid,
            )
        )
    again = bulk.rows(
        conn,
        # Two joins, each on its own index: one on either column reads every leaf.
        "SELECT q.transfer_id, NULL FROM log_queue q "
        "JOIN log_leaves l ON l.transfer_id = q.transfer_id "
        "UNION ALL SELECT NULL, q.key_event_id FROM log_queue q "
        "JOIN log_leaves l ON l.key_event_id = q.key_event_id",
    )
    _queued_again(
        {t for t, _ in again if t is not None}, {e for t, e in again if t is None}, report
    )


def _named_twice_or_never(idx: int, tid: int | None, eid: int | None) -> Finding:
    """A leaf names one transfer or one key event: the node finds an entry's leaf by the
    entry's column, so a leaf naming both hides the other from sealing."""
    if tid is None:
        return finding("log", "leaf {idx} names no transfer and no key event", leaf=idx, idx=idx)
    return finding(
        "log",
        "leaf {idx} names both transfer {transfer} and key event {event}",
        leaf=idx,
        idx=idx,
        transfer=tid,
        event=eid if eid is not None else "",
        transfer_id=tid,
    )


def _queued_again(transfers: set[int], events: set[int], report: Report) -> None:
    """An entry waiting for the log that is in it already: the sealer cannot give it a
    second leaf (a unique key refuses), so nothing after it is ever sealed."""
    for tid in sorted(transfers):
        report.findings.append(
            finding(
                "log",
                "the log queue names transfer {transfer}, which is already in the log: sealing "
                "is stuck",
                transfer=tid,
                transfer_id=tid,
            )
        )
    for eid in sorted(events):
        report.findings.append(
            finding(
                "log",
                "the log queue names key event {event}, which is already in the log: sealing "
                "is stuck",
                event=eid,
            )
        )


def _check_witnessed(
    notes: Sequence[str],
    origin: str,
    verifier: str,
    size: int,
    root_at: Callable[[int], bytes | None],
    is_stored: Callable[[int], bool] | None,
    report: Report,
) -> None:
    """Checkpoints kept outside the database anchor the log: removing its last entries
    and their checkpoints leaves a log consistent with itself, but not with these; and the
    node stored every checkpoint it signed. `root_at` gives the log's root at a size (None:
    a size a previous audit checked); `is_stored`, whether a checkpoint of a size is stored
    (None: not looked at)."""
    for note in notes:
        try:
            seen = open_checkpoint(note, verifier, origin=origin)
        except CheckpointError as exc:
            report.findings.append(
                finding("checkpoint", "a witnessed checkpoint: {reason}", **_reason(exc))
            )
            continue
        found = None if seen.size > size else root_at(seen.size)
        if seen.size > size:
            report.findings.append(
                finding(
                    "checkpoint",
                    "a checkpoint of size {witnessed} was witnessed but the log has only {size} "
                    "leaves: entries were removed",
                    witnessed=seen.size,
                    size=size,
                )
            )
        elif found is not None and found != seen.root:
            report.findings.append(
                finding(
                    "checkpoint",
                    "the log's first {size} leaves are not those of the checkpoint witnessed at "
                    "that size",
                    size=seen.size,
                )
            )
        elif is_stored is not None and not is_stored(seen.size):
            report.findings.append(
                finding(
                    "checkpoint",
                    "the checkpoint of size {size} kept outside the database is no longer stored "
                    "in it",
                    size=seen.size,
                )
            )


def _reason(exc: CheckpointError) -> dict[str, Any]:
    """Why a checkpoint is refused: the English sentence, and its template (a msgid) with
    the values that fill it, from which the page says it in the reader's language."""
    return {"reason": str(exc), "reason_template": exc.template, "reason_args": dict(exc.params)}
