"""Audit of the Merkle log: every leaf recomputed from what it records, every stored inner
node from the leaves, every checkpoint's root and signature, and the checkpoints kept
outside the database.

The log is read once (`read_log`). The tree over its stored leaf hashes is built and checked
while the transfers are (`guess_tree`): when every transfer gives the leaf sealed for it,
that tree is the one the audit needs, and only the comparison is left for the end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from audits.report import Finding, Report
from ledger import bulk
from ledger.checkpoint import CheckpointError, open_checkpoint
from ledger.merkle import HASH_SIZE, Frontier, MemoryNodes, root

Entry = tuple[int | None, int | None]  # (transfer id, key event id) of a leaf


@dataclass
class Tree:
    """The tree over one list of leaf hashes, and what depends on it alone: the stored inner
    nodes that differ from it, and the findings on the checkpoints."""

    leaves: list[bytes]
    nodes: MemoryNodes
    differing: list[tuple[int, int]]  # leaf ranges of differing stored nodes, smallest first
    missing: list[tuple[int, int]]  # (level, index) of the inner nodes a sealed log stores
    beyond: int  # one past the last leaf a stored node covers, or the size
    findings: list[Finding]
    checkpoints: int


@dataclass
class StoredLog:
    """The log as the audit's snapshot holds it."""

    leaves: list[tuple[int, int | None, int | None, bytes]]  # idx, transfer, key event, hash
    queued: list[Entry]
    nodes: list[tuple[int, int, bytes]]  # level, idx, hash
    checkpoints: list[tuple[int, bytes, str]]  # tree size, root, signed note
    guess: Tree | None = None  # see guess_tree


def read_log(conn: Connection) -> StoredLog:
    """Every row of the log's tables, in the audit's snapshot (hashes come as bytes from
    both drivers)."""
    return StoredLog(
        bulk.rows(conn, "SELECT idx, transfer_id, key_event_id, hash FROM log_leaves ORDER BY idx"),
        bulk.rows(conn, "SELECT transfer_id, key_event_id FROM log_queue"),
        bulk.rows(conn, "SELECT level, idx, hash FROM log_nodes"),
        bulk.rows(conn, "SELECT tree_size, root, note FROM checkpoints ORDER BY tree_size"),
    )


def guess_tree(stored: StoredLog, origin: str, verifier: str, witnessed: Sequence[str]) -> None:
    """Check the tree of the stored leaf hashes while the transfers are being checked:
    `check_log` keeps it when every entry gives the leaf that was sealed for it, as in a
    ledger nobody altered."""
    leaves: list[bytes] = []
    for idx, _, _, digest in stored.leaves:
        leaves.extend(bytes(HASH_SIZE) for _ in range(idx - len(leaves)))  # as _leaves does
        leaves.append(digest)
    if all(len(digest) == HASH_SIZE for digest in leaves):
        stored.guess = _tree(stored, leaves, origin, verifier, witnessed)


def check_log(
    stored: StoredLog,
    origin: str,
    verifier: str,
    transfer_leaves: dict[int, bytes],
    event_leaves: dict[int, bytes],
    witnessed: Sequence[str],
    report: Report,
) -> Frontier:
    """Check the whole log; return the frontier of its tree, for the next audit to resume."""
    recomputed, entries, flagged = _leaves(stored, transfer_leaves, event_leaves, report)
    report.leaves = len(recomputed)
    _unsealed(stored, transfer_leaves, event_leaves, entries, report)
    tree = stored.guess
    if tree is None or tree.leaves != recomputed:
        tree = _tree(stored, recomputed, origin, verifier, witnessed)
    _report_nodes(tree, flagged, entries, report)
    report.checkpoints += tree.checkpoints
    report.findings.extend(tree.findings)
    return Frontier.from_nodes(len(recomputed), tree.nodes)


def _tree(
    stored: StoredLog, leaves: list[bytes], origin: str, verifier: str, witnessed: Sequence[str]
) -> Tree:
    nodes = MemoryNodes.from_leaves(leaves)
    differing, beyond = _differing_nodes(stored, nodes, len(leaves))
    checked = Report()
    _impossible_nodes(stored, checked)
    _check_checkpoints(stored, origin, verifier, nodes, len(leaves), checked)
    sizes = {tree_size for tree_size, _, _ in stored.checkpoints}
    _check_witnessed(
        witnessed, origin, verifier, len(leaves), lambda n: root(n, nodes), sizes, checked
    )
    missing = _missing_nodes(stored, len(leaves))
    return Tree(leaves, nodes, differing, missing, beyond, checked.findings, checked.checkpoints)


def _impossible_nodes(stored: StoredLog, report: Report) -> None:
    for level, idx, _ in stored.nodes:
        if level < 1 or idx < 0:
            report.findings.append(
                Finding(
                    "log",
                    f"the log stores a node at level {level}, index {idx}, where no tree has one",
                )
            )


def _leaves(
    stored: StoredLog,
    transfer_leaves: dict[int, bytes],
    event_leaves: dict[int, bytes],
    report: Report,
) -> tuple[list[bytes], list[Entry], set[int]]:
    """The leaf hashes recomputed from the entries the stored leaves point at."""
    recomputed: list[bytes] = []
    entries: list[Entry] = []
    flagged: set[int] = set()
    for idx, tid, eid, digest in stored.leaves:
        while len(recomputed) < idx:  # a hole: keep positions, flag it
            gap = len(recomputed)
            report.findings.append(Finding("log", f"leaf {gap} is missing", leaf=gap))
            recomputed.append(bytes(HASH_SIZE))
            entries.append((None, None))
            flagged.add(gap)
        idx = len(recomputed)
        if (tid is None) == (eid is None):
            report.findings.append(_named_twice_or_never(idx, tid, eid))
            flagged.add(idx)
        if tid is not None:
            expected = transfer_leaves.get(tid)
        else:
            expected = event_leaves.get(eid) if eid is not None else None
        what = f"transfer {tid}" if tid is not None else f"key event {eid}"
        if expected is None:
            report.findings.append(
                Finding("log", f"leaf {idx}: {what} is missing", transfer_id=tid, leaf=idx)
            )
            flagged.add(idx)
            expected = digest
        elif expected != digest:
            report.findings.append(
                Finding(
                    "log",
                    f"leaf {idx}: {what} differs from what was sealed",
                    transfer_id=tid,
                    leaf=idx,
                )
            )
            flagged.add(idx)
        recomputed.append(expected)
        entries.append((tid, eid))
    return recomputed, entries, flagged


def _named_twice_or_never(idx: int, tid: int | None, eid: int | None) -> Finding:
    """A leaf names one transfer or one key event: the node finds an entry's leaf by the
    entry's column, so a leaf naming both hides the other from sealing."""
    if tid is None:
        return Finding("log", f"leaf {idx} names no transfer and no key event", leaf=idx)
    return Finding(
        "log",
        f"leaf {idx} names both transfer {tid} and key event {eid}",
        transfer_id=tid,
        leaf=idx,
    )


def _unsealed(
    stored: StoredLog,
    transfer_leaves: dict[int, bytes],
    event_leaves: dict[int, bytes],
    entries: list[Entry],
    report: Report,
) -> None:
    """Every transfer and key event is in the log, or waiting in its queue."""
    queued_t: set[int] = set()
    queued_e: set[int | None] = set()
    for tid, eid in stored.queued:
        (queued_t.add(tid) if tid is not None else queued_e.add(eid))
    report.unsealed = len(queued_t) + len(queued_e)
    sealed_t = {tid for tid, _ in entries if tid is not None}
    sealed_e = {eid for _, eid in entries if eid is not None}
    for tid in sorted(transfer_leaves.keys() - sealed_t - queued_t):
        report.findings.append(
            Finding(
                "log", f"transfer {tid} is neither in the log nor waiting for it", transfer_id=tid
            )
        )
    for eid in sorted(event_leaves.keys() - sealed_e - queued_e):
        report.findings.append(Finding("log", f"key event {eid} is not in the log"))
    # An entry waiting for the log that names nothing stored: the sealer refuses to seal
    # past it (DanglingQueueEntry), so the log stops growing until someone removes it.
    for tid in sorted(queued_t - transfer_leaves.keys()):
        report.findings.append(
            Finding(
                "log",
                f"the log queue names transfer {tid}, which is not stored: sealing is stuck",
                transfer_id=tid,
            )
        )
    for eid in sorted(e for e in queued_e - event_leaves.keys() if e is not None):
        report.findings.append(
            Finding(
                "log", f"the log queue names key event {eid}, which is not stored: sealing is stuck"
            )
        )
    _queued_again(queued_t & sealed_t, {e for e in queued_e if e is not None} & sealed_e, report)


def _queued_again(transfers: set[int], events: set[int], report: Report) -> None:
    """An entry waiting for the log that is in it already: the sealer cannot give it a
    second leaf (a unique key refuses), so nothing after it is ever sealed."""
    for tid in sorted(transfers):
        report.findings.append(
            Finding(
                "log",
                f"the log queue names transfer {tid}, which is already in the log: sealing is "
                "stuck",
                transfer_id=tid,
            )
        )
    for eid in sorted(events):
        report.findings.append(
            Finding(
                "log",
                f"the log queue names key event {eid}, which is already in the log: sealing is "
                "stuck",
            )
        )


def _differing_nodes(
    stored: StoredLog, nodes: MemoryNodes, size: int
) -> tuple[list[tuple[int, int]], int]:
    """The leaf ranges of the stored inner nodes that differ from the tree's, smallest first,
    and one past the last leaf any stored node covers (at least `size`)."""
    differing: list[tuple[int, int]] = []
    beyond = size
    for level, idx, digest in stored.nodes:
        if level < 1 or idx < 0:
            continue  # no tree has a node there: `_impossible_nodes` says so
        first, last = idx << level, ((idx + 1) << level) - 1
        if last >= size:  # sealed over leaves that are no longer there
            beyond = max(beyond, last + 1)
        elif nodes.perfect(level, idx) != digest:
            differing.append((first, last))
    differing.sort(key=lambda r: r[1] - r[0])
    return differing, beyond


def _missing_nodes(stored: StoredLog, size: int) -> list[tuple[int, int]]:
    """The inner nodes the sealer stores for `size` leaves (every perfect subtree of height
    one or more) that are not stored: receipts, proofs and the next sealing round read them."""
    present = {(level, idx) for level, idx, _ in stored.nodes}
    return [
        (level, idx)
        for level in range(1, size.bit_length())
        for idx in range(size >> level)
        if (level, idx) not in present
    ]


MAX_NAMED_NODES = 10


def _report_nodes(tree: Tree, flagged: set[int], entries: list[Entry], report: Report) -> None:
    """Stored inner nodes must be those of the leaves: a difference shows reordering.

    Only the smallest differing subtrees not already explained by a changed or missing
    leaf are reported, so one altered row gives one finding, not one per tree level."""
    size = len(entries)
    if tree.beyond > size:
        report.findings.append(
            Finding(
                "log",
                f"the log was sealed up to at least leaf {tree.beyond - 1} but has only "
                f"{size} leaves",
                leaf=size,
            )
        )
    for level, idx in tree.missing[:MAX_NAMED_NODES]:
        first, last = idx << level, ((idx + 1) << level) - 1
        report.findings.append(
            Finding(
                "log",
                f"the log's stored node at level {level}, index {idx} (over leaves "
                f"{first}..{last}) is missing: receipts and sealing need it",
                leaf=first,
            )
        )
    if len(tree.missing) > MAX_NAMED_NODES:
        report.findings.append(
            Finding(
                "log",
                f"{len(tree.missing) - MAX_NAMED_NODES} more of the log's stored nodes are missing",
            )
        )
    reported: list[tuple[int, int]] = []
    for first, last in tree.differing:
        if any(first <= leaf <= last for leaf in flagged) or any(
            first <= a and b <= last for a, b in reported
        ):
            continue
        reported.append((first, last))
        inside = [t for t, _ in entries[first : last + 1] if t is not None]
        named = ", ".join(map(str, inside[:6])) + (", ..." if len(inside) > 6 else "")
        report.findings.append(
            Finding(
                "log",
                f"the log's leaves {first}..{last} (transfers {named or 'none'}) are not "
                "in the order they were sealed",
                transfer_id=inside[0] if len(inside) == 1 else None,
                leaf=first,
            )
        )


def _check_checkpoints(
    stored: StoredLog, origin: str, verifier: str, nodes: MemoryNodes, size: int, report: Report
) -> None:
    latest = intact = 0  # the largest checkpoint whose tree the log still has, before a break
    broken = False
    sizes = {tree_size for tree_size, _, _ in stored.checkpoints}
    for tree_size, stored_root, text in stored.checkpoints:
        report.checkpoints += 1
        latest = max(latest, tree_size)
        try:
            note = open_checkpoint(text, verifier, origin=origin)
        except CheckpointError as exc:
            report.findings.append(Finding("checkpoint", f"checkpoint {tree_size}: {exc}"))
            continue
        if note.previous and note.previous not in sizes:
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"checkpoint {tree_size} was signed after checkpoint {note.previous}, "
                    "which is no longer stored",
                )
            )
        if note.size != tree_size or note.root != stored_root:
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"checkpoint {tree_size}: stored size or root differs from the signed note",
                )
            )
        elif tree_size > size or root(tree_size, nodes) != note.root:
            # The first broken checkpoint bounds where history changed.
            where = "" if broken else f" (a change among leaves {intact}..{tree_size - 1})"
            broken = True
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"checkpoint {tree_size}: the log "
                    "no longer has the tree this checkpoint signed" + where,
                )
            )
        elif not broken:
            intact = tree_size
    if latest != size:
        report.findings.append(
            Finding(
                "checkpoint", f"the log has {size} leaves but the latest checkpoint signs {latest}"
            )
        )


def _check_witnessed(
    notes: Sequence[str],
    origin: str,
    verifier: str,
    size: int,
    root_at: Callable[[int], bytes | None],
    stored_sizes: set[int] | None,
    report: Report,
) -> None:
    """Checkpoints kept outside the database anchor the log: removing its last entries
    and their checkpoints leaves a log consistent with itself, but not with these; and the
    node stored every checkpoint it signed. `root_at` gives the log's root at a size (None:
    a size a previous audit checked); `stored_sizes`, the sizes of the stored checkpoints
    (None: not looked at)."""
    for note in notes:
        try:
            seen = open_checkpoint(note, verifier, origin=origin)
        except CheckpointError as exc:
            report.findings.append(Finding("checkpoint", f"a witnessed checkpoint: {exc}"))
            continue
        found = None if seen.size > size else root_at(seen.size)
        if seen.size > size:
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"a checkpoint of size {seen.size} was witnessed but the log "
                    f"has only {size} leaves: entries were removed",
                )
            )
        elif found is not None and found != seen.root:
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"the log's first {seen.size} leaves are not those of the "
                    "checkpoint witnessed at that size",
                )
            )
        elif stored_sizes is not None and seen.size not in stored_sizes:
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"the checkpoint of size {seen.size} kept outside the database is no "
                    "longer stored in it",
                )
            )


# -- resumed from a previous audit ----------------------------------------------------------


def check_log_since(
    conn: Connection,
    since: Frontier,
    origin: str,
    verifier: str,
    transfer_leaves: dict[int, bytes],
    event_leaves: dict[int, bytes],
    earlier_leaf: Callable[[int], bytes | None],
    witnessed: Sequence[str],
    report: Report,
) -> Frontier:
    """Check the leaves sealed after a previous audit, from the frontier it left: each leaf
    against its entry, each inner node completed against the stored one, each checkpoint
    signed since against the root the frontier reaches at its size. What came before is the
    previous audit's, whose frontier is signed; `earlier_leaf` gives the leaf of a transfer
    that audit checked while it still waited for the log. Returns the new frontier."""
    start = since.size
    leaves = bulk.rows(
        conn,
        f"SELECT idx, transfer_id, key_event_id, hash FROM log_leaves WHERE idx >= {start:d} "
        "ORDER BY idx",
    )
    nodes = {
        (level, idx): bytes(digest)
        for level, idx, digest in bulk.rows(
            conn,
            f"SELECT level, idx, hash FROM log_nodes WHERE ((idx + 1) << level) > {start:d}",
        )
    }
    signed = {
        size: (bytes(stored_root), note)
        for size, stored_root, note in bulk.rows(
            conn,
            f"SELECT tree_size, root, note FROM checkpoints WHERE tree_size >= {start:d}",
        )
    }
    frontier = Frontier(since.size, since.hashes)
    roots = {frontier.size: frontier.root()}
    entries: list[Entry] = []
    for idx, tid, eid, digest in leaves:
        if idx != frontier.size:
            report.findings.append(
                Finding("log", f"leaf {frontier.size} is missing", leaf=frontier.size)
            )
            break  # the positions after a hole cannot be checked against anything signed
        if (tid is None) == (eid is None):
            report.findings.append(_named_twice_or_never(idx, tid, eid))
        expected = _expected_leaf(tid, eid, transfer_leaves, event_leaves, earlier_leaf)
        what = f"transfer {tid}" if tid is not None else f"key event {eid}"
        if expected is None:
            report.findings.append(
                Finding("log", f"leaf {idx}: {what} is missing", transfer_id=tid, leaf=idx)
            )
            expected = bytes(digest)
        elif expected != bytes(digest):
            report.findings.append(
                Finding(
                    "log",
                    f"leaf {idx}: {what} differs from what was sealed",
                    transfer_id=tid,
                    leaf=idx,
                )
            )
        for level, index, digest_ in frontier.append(expected)[1:]:
            if nodes.get((level, index)) != digest_:
                first = index << level
                state = "is missing" if (level, index) not in nodes else "differs from its leaves"
                report.findings.append(
                    Finding(
                        "log",
                        f"the log's stored node at level {level}, index {index} (over leaves "
                        f"{first}..{first + (1 << level) - 1}) {state}",
                        leaf=first,
                    )
                )
        roots[frontier.size] = frontier.root()
        entries.append((tid, eid))
    report.leaves = frontier.size
    _check_new_checkpoints(signed, roots, origin, verifier, frontier.size, report)
    # Witnessed checkpoints within the previous audit's tree were checked by that audit.
    _check_witnessed(
        witnessed,
        origin,
        verifier,
        frontier.size,
        lambda n: roots.get(n) if n > start else None,
        None,
        report,
    )
    queued = bulk.rows(conn, "SELECT transfer_id, key_event_id FROM log_queue")
    _unsealed_since(queued, transfer_leaves, event_leaves, entries, report)
    again = bulk.rows(
        conn,
        "SELECT q.transfer_id, q.key_event_id FROM log_queue q JOIN log_leaves l "
        "ON l.transfer_id = q.transfer_id OR l.key_event_id = q.key_event_id",
    )
    _queued_again(
        {t for t, _ in again if t is not None}, {e for t, e in again if t is None}, report
    )
    return frontier


def _expected_leaf(
    tid: int | None,
    eid: int | None,
    transfer_leaves: dict[int, bytes],
    event_leaves: dict[int, bytes],
    earlier_leaf: Callable[[int], bytes | None],
) -> bytes | None:
    if tid is not None:
        found = transfer_leaves.get(tid)
        return found if found is not None else earlier_leaf(tid)
    return event_leaves.get(eid) if eid is not None else None


def _check_new_checkpoints(
    signed: dict[int, tuple[bytes, str]],
    roots: dict[int, bytes],
    origin: str,
    verifier: str,
    size: int,
    report: Report,
) -> None:
    for tree_size, (stored_root, text) in sorted(signed.items()):
        report.checkpoints += 1
        try:
            note = open_checkpoint(text, verifier, origin=origin)
        except CheckpointError as exc:
            report.findings.append(Finding("checkpoint", f"checkpoint {tree_size}: {exc}"))
            continue
        if note.size != tree_size or note.root != stored_root:
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"checkpoint {tree_size}: stored size or root differs from the signed note",
                )
            )
        elif roots.get(tree_size) != note.root:
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"checkpoint {tree_size}: the log no longer has the tree this checkpoint "
                    "signed",
                )
            )
    latest = max(signed, default=0)
    if latest != size and size > min(roots):
        report.findings.append(
            Finding(
                "checkpoint", f"the log has {size} leaves but the latest checkpoint signs {latest}"
            )
        )


def _unsealed_since(
    queued: list[tuple[int | None, int | None]],
    transfer_leaves: dict[int, bytes],
    event_leaves: dict[int, bytes],
    entries: list[Entry],
    report: Report,
) -> None:
    """Every transfer checked in this run is in the log or waiting for it."""
    queued_t = {tid for tid, _ in queued if tid is not None}
    report.unsealed = len(queued)
    sealed_t = {tid for tid, _ in entries if tid is not None}
    for tid in sorted(transfer_leaves.keys() - sealed_t - queued_t):
        report.findings.append(
            Finding(
                "log", f"transfer {tid} is neither in the log nor waiting for it", transfer_id=tid
            )
        )
