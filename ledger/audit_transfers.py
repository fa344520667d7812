"""Reading the transfers for the audit and dispatching their checks (`audit_checks`).

Transfers are read in id ranges straight from the driver's cursor, with their postings and
the transfers they reference, and checked in worker processes, one per core, while the
next range is read. Small ledgers are checked in-process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

from sqlalchemy import Connection

from ledger import bulk
from ledger import repository as repo
from ledger.audit_checks import (
    KeyState,
    Leg,
    TransferChecks,
    Transfers,
    Work,
    check_in_worker,
    start_worker,
)
from ledger.audit_report import Finding

CHUNK = 5_000  # transfers read per query, and checked per task
PARALLEL_FROM = 20_000  # below this many transfers, worker processes cost more than they save

Progress = Callable[[int, int], None]


def audit_transfers(
    conn: Connection,
    local: str,
    origin: str,
    keys: dict[str, KeyState],
    workers: int,
    progress: Progress | None = None,
) -> Transfers:
    low, top = conn.exec_driver_sql("SELECT min(id), max(id) FROM transfers").one()
    result = Transfers()
    if top is None:
        return result
    total = top - low + 1
    ranges = [(lo, min(lo + CHUNK - 1, top)) for lo in range(low, top + 1, CHUNK)]
    codes: dict[int, str] = dict(bulk.rows(conn, "SELECT id, code FROM accounts"))
    if workers <= 1 or total < PARALLEL_FROM:
        checks = TransferChecks(local, origin, keys)
        for lo, hi in ranges:
            result.add(checks.check(_read(conn, lo, hi, codes, result)))
            _report(progress, result, total)
        return result
    context = multiprocessing.get_context("spawn")  # nothing of this process inherited
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=start_worker, initargs=(local, origin, keys)
    ) as pool:
        tasks: list[Future[Transfers]] = []
        for lo, hi in ranges:
            tasks.append(pool.submit(check_in_worker, _read(conn, lo, hi, codes, result)))
            _collect(tasks, result, progress, total, wait=len(tasks) > 2 * workers)
        _collect(tasks, result, progress, total, wait=True, everything=True)
    return result


def _collect(
    tasks: list[Future[Transfers]],
    result: Transfers,
    progress: Progress | None,
    total: int,
    *,
    wait: bool,
    everything: bool = False,
) -> None:
    """Merge finished tasks; with `wait`, block on the oldest (so reading never runs far
    ahead of checking and memory stays bounded)."""
    while tasks and (tasks[0].done() or wait):
        result.add(tasks.pop(0).result())
        _report(progress, result, total)
        wait = everything


def _report(progress: Progress | None, result: Transfers, total: int) -> None:
    if progress is not None:
        progress(result.count, total)


def _read(
    conn: Connection, lo: int, hi: int, codes: dict[int, str], result: Transfers
) -> list[Work]:
    rows = bulk.rows(
        conn,
        "SELECT id, kind, initiator, client_id, key_id, nonce, order_json, signature, "
        f"ref_id, created_ms FROM transfers WHERE id BETWEEN {lo} AND {hi} ORDER BY id",
    )
    legs: dict[int, list[Leg]] = {row[0]: [] for row in rows}
    for tid, account_id, currency, amount in bulk.rows(
        conn,
        "SELECT transfer_id, account_id, currency, amount FROM postings "
        f"WHERE transfer_id BETWEEN {lo} AND {hi}",
    ):
        if tid in legs:
            legs[tid].append((codes.get(account_id, f"#{account_id}"), currency, amount))
        else:
            result.findings.append(
                Finding(
                    "postings", f"transfer {tid}: postings of a missing transfer", transfer_id=tid
                )
            )
    originals = repo.originals(conn, {row[8] for row in rows if row[8] is not None})
    return [
        (
            (*row[:7], bytes(row[7]), *row[8:]),
            legs[row[0]],
            originals.get(row[8]) if row[8] is not None else None,
        )
        for row in rows
    ]
