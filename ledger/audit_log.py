"""Audit of the Merkle log: every leaf recomputed from what it records, every stored inner
node from the leaves, every checkpoint's root and signature, and the checkpoints kept
outside the database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from ledger.audit_report import Finding, Report
from ledger.checkpoint import CheckpointError, open_checkpoint
from ledger.merkle import MemoryNodes, root

Entry = tuple[int | None, int | None]  # (transfer id, key event id) of a leaf


def check_log(
    conn: Connection,
    origin: str,
    verifier: str,
    transfer_leaves: dict[int, bytes],
    event_leaves: dict[int, bytes],
    witnessed: Sequence[str],
    report: Report,
) -> None:
    recomputed, entries, flagged = _leaves(conn, transfer_leaves, event_leaves, report)
    report.leaves = len(recomputed)
    _unsealed(conn, transfer_leaves, event_leaves, entries, report)
    nodes = MemoryNodes.from_leaves(recomputed)
    _check_nodes(conn, nodes, flagged, entries, report)
    _check_checkpoints(conn, origin, verifier, nodes, len(recomputed), report)
    _check_witnessed(witnessed, origin, verifier, nodes, len(recomputed), report)


def _leaves(
    conn: Connection,
    transfer_leaves: dict[int, bytes],
    event_leaves: dict[int, bytes],
    report: Report,
) -> tuple[list[bytes], list[Entry], set[int]]:
    """The leaf hashes recomputed from the entries the stored leaves point at."""
    recomputed: list[bytes] = []
    entries: list[Entry] = []
    flagged: set[int] = set()
    rows = conn.exec_driver_sql(
        "SELECT idx, transfer_id, key_event_id, hash FROM log_leaves ORDER BY idx"
    )
    for idx, tid, eid, stored in rows:
        while len(recomputed) < idx:  # a hole: keep positions, flag it
            gap = len(recomputed)
            report.findings.append(Finding("log", f"leaf {gap} is missing", leaf=gap))
            recomputed.append(bytes(32))
            entries.append((None, None))
            flagged.add(gap)
        idx = len(recomputed)
        expected = transfer_leaves.get(tid) if tid is not None else event_leaves.get(eid)
        what = f"transfer {tid}" if tid is not None else f"key event {eid}"
        if expected is None:
            report.findings.append(
                Finding("log", f"leaf {idx}: {what} is missing", transfer_id=tid, leaf=idx)
            )
            flagged.add(idx)
            expected = bytes(stored)
        elif expected != bytes(stored):
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


def _unsealed(
    conn: Connection,
    transfer_leaves: dict[int, bytes],
    event_leaves: dict[int, bytes],
    entries: list[Entry],
    report: Report,
) -> None:
    """Every transfer and key event is in the log, or waiting in its queue."""
    queued_t: set[int] = set()
    queued_e: set[int] = set()
    for tid, eid in conn.exec_driver_sql("SELECT transfer_id, key_event_id FROM log_queue"):
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


def _check_nodes(
    conn: Connection, nodes: MemoryNodes, flagged: set[int], entries: list[Entry], report: Report
) -> None:
    """Stored inner nodes must be those of the leaves: a difference shows reordering.

    Only the smallest differing subtrees not already explained by a changed or missing
    leaf are reported, so one altered row gives one finding, not one per tree level."""
    size = len(entries)
    differing: list[tuple[int, int]] = []
    beyond = size
    for level, idx, digest in conn.exec_driver_sql("SELECT level, idx, hash FROM log_nodes"):
        first, last = idx << level, ((idx + 1) << level) - 1
        if last >= size:  # sealed over leaves that are no longer there
            beyond = max(beyond, last + 1)
        elif nodes.perfect(level, idx) != bytes(digest):
            differing.append((first, last))
    if beyond > size:
        report.findings.append(
            Finding(
                "log",
                f"the log was sealed up to at least leaf {beyond - 1} but has only {size} leaves",
                leaf=size,
            )
        )
    differing.sort(key=lambda r: r[1] - r[0])
    reported: list[tuple[int, int]] = []
    for first, last in differing:
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
    conn: Connection, origin: str, verifier: str, nodes: MemoryNodes, size: int, report: Report
) -> None:
    latest = intact = 0  # the largest checkpoint whose tree the log still has, before a break
    broken = False
    for tree_size, stored_root, text in conn.exec_driver_sql(
        "SELECT tree_size, root, note FROM checkpoints ORDER BY tree_size"
    ):
        report.checkpoints += 1
        latest = max(latest, tree_size)
        try:
            note = open_checkpoint(text, verifier, origin=origin)
        except CheckpointError as exc:
            report.findings.append(Finding("checkpoint", f"checkpoint {tree_size}: {exc}"))
            continue
        if note.size != tree_size or note.root != bytes(stored_root):
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
    notes: Sequence[str], origin: str, verifier: str, nodes: MemoryNodes, size: int, report: Report
) -> None:
    """Checkpoints kept outside the database anchor the log: removing its last entries
    and their checkpoints leaves a log consistent with itself, but not with these."""
    for note in notes:
        try:
            seen = open_checkpoint(note, verifier, origin=origin)
        except CheckpointError as exc:
            report.findings.append(Finding("checkpoint", f"a witnessed checkpoint: {exc}"))
            continue
        if seen.size > size:
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"a checkpoint of size {seen.size} was witnessed but the log "
                    f"has only {size} leaves: entries were removed",
                )
            )
        elif root(seen.size, nodes) != seen.root:
            report.findings.append(
                Finding(
                    "checkpoint",
                    f"the log's first {seen.size} leaves are not those of the "
                    "checkpoint witnessed at that size",
                )
            )
