"""Reading the transfers for the audit and dispatching their checks (`audit_checks`).

A large ledger is checked by worker processes, one per core (the Ed25519 verifications are
most of the work), while the audit's own process checks the rest of the ledger. Each worker
opens its own connection and reads its own id ranges, in the audit's snapshot:

- PostgreSQL: the audit's transaction exports its snapshot (`pg_export_snapshot`) and every
  worker's REPEATABLE READ transaction imports it, so all read the very same state.
- SQLite: every worker holds one read transaction. History is append-only (triggers refuse
  updates and deletes, and postings once their transfer is written) and transfer ids are
  taken under the write lock, in commit order: what the node commits after the audit's
  snapshot has ids beyond the audit's last one, so the ranges up to it read the same rows
  in every snapshot.

Where workers cannot share the snapshot (an in-memory SQLite database, a server that cannot
export snapshots), this process reads the ranges and sends them; a range whose worker could
not connect is checked here. Small ledgers are checked in-process.

Reading is plain SQL on the driver's own connection (DB-API), the same in this process and
in the workers, which thus start without SQLAlchemy.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.context
import multiprocessing.util
import re
import sys
import types
from collections.abc import Callable, Collection
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from audits.checks import KeyState, Leg, Sealed, TransferChecks, Transfers, Work, leaf_of
from audits.report import Finding, finding
from ledger.operations import Original

if TYPE_CHECKING:
    from sqlalchemy import Connection

CHUNK = 1_000  # transfers read and checked per task: small, so that the workers end together
PARALLEL_FROM = 20_000  # below this many transfers, worker processes cost more than they save

Progress = Callable[[int, int], None]
# All rows of a query, its parameters marked "?" whatever the driver.
Fetch = Callable[..., list[tuple[Any, ...]]]
Range = tuple[int, int]  # first and last transfer id
Batch = tuple[list[Work], Sealed]  # the transfers of a range and their leaves in the log
EXPORT = "SELECT pg_export_snapshot()"


@dataclass(frozen=True)
class Source:
    """How a worker process reaches the audit's snapshot: the DB-API module and its connect
    arguments, and on PostgreSQL the exported snapshot to import."""

    module: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(repr=False)  # a password, maybe
    snapshot: str | None = None


class SnapshotUnavailable(Exception):
    """A worker could not read in the audit's snapshot: its ranges are read by the audit's
    process instead."""


def shared_snapshot(conn: Connection) -> Source | None:
    """Where workers can read the snapshot of `conn`'s transaction, if they can. On
    PostgreSQL this must be the transaction's first statement (the snapshot is exported
    from it); afterwards the transaction goes on as usual."""
    url, dialect = conn.engine.url, conn.dialect
    module = getattr(dialect.dbapi, "__name__", "")
    if dialect.name == "sqlite":
        args, kwargs = dialect.create_connect_args(url)
        name = str(args[0]) if args else ""
        if name in ("", ":memory:") or "mode=memory" in name:
            return None  # private to this process
        return Source(module, tuple(args), {"timeout": 60, **kwargs})
    if dialect.name != "postgresql":
        return None
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(EXPORT)
        (snapshot,) = cursor.fetchone()
    except dialect.loaded_dbapi.Error:  # a standby, a server without snapshot export
        driver.rollback()  # the next statement starts the transaction afresh
        return None
    finally:
        cursor.close()
    kwargs = url.translate_connect_args(database="dbname", username="user")
    kwargs.update(url.query)
    return Source(module, (), kwargs, snapshot)


class TransferAudit:
    """The transfers' checks, started on entering: in worker processes while the caller
    checks the rest of the ledger (calling `poll` now and then reports progress), or in this
    process when `result` is asked for."""

    def __init__(
        self,
        conn: Connection,
        source: Source | None,
        local: str,
        origin: str,
        keys: dict[str, KeyState],
        workers: int,
        progress: Progress | None = None,
        after: int | None = None,
    ) -> None:
        """`after`: the last transfer a previous audit checked (only later ones are read)."""
        self.source, self.local, self.origin, self.keys = source, local, origin, keys
        self.after = after
        self.workers, self.progress = workers, progress
        self.done = Transfers()
        self.fetch = _fetcher(conn.connection.driver_connection)
        self.pool: ProcessPoolExecutor | None = None
        self.tasks: list[tuple[Range, Future[Transfers]]] = []
        self.total = 0

    def __enter__(self) -> TransferAudit:
        after = self.after
        later = "" if after is None else f" WHERE id > {after:d}"
        low, top = self.fetch(f"SELECT min(id), max(id) FROM transfers{later}")[0]
        self.ranges: list[Range] = []
        self.last = top if top is not None else (after or 0)  # the last one this audit checks
        # The ids whose transfers (and their leaves) this audit checks: none if empty.
        self.checked: Range | None = None if top is None else (low, top)
        self.codes = {i: code for i, code in self.fetch("SELECT id, code FROM accounts")}
        self.checks = TransferChecks(self.local, self.origin, self.keys)
        if top is None:
            return self
        self.total = top - low + 1
        self.ranges = [(lo, min(lo + CHUNK - 1, top)) for lo in range(low, top + 1, CHUNK)]
        if self.workers > 1 and self.total >= PARALLEL_FROM:
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=_BareSpawn(),
                initializer=start_worker,
                initargs=(self.source, self.local, self.origin, self.keys, self.codes),
            )
            if self.source is not None:
                self.tasks = [(r, self.pool.submit(check_range, *r)) for r in self.ranges]
            else:
                self._send()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.pool is not None:  # the workers exit on their own, after the audit
            self.pool.shutdown(wait=False, cancel_futures=True)

    def poll(self) -> None:
        """Merge the tasks done so far."""
        self._collect(wait=False)

    def result(self) -> Transfers:
        if self.pool is None:
            for lo, hi in self.ranges:
                self._check_here(lo, hi)
        else:
            self._collect(wait=True)
        return self.done

    def leaf_of(self, transfer_id: int) -> bytes | None:
        """The leaf of a transfer checked by an earlier audit (sealed since), recomputed."""
        work, _ = read_range(self.fetch, transfer_id, transfer_id, self.codes, [])
        return leaf_of(work[0][0], work[0][1]) if work else None

    def _send(self) -> None:
        """Read every range here and send it to the workers, a few tasks ahead of them (so
        that memory stays bounded)."""
        assert self.pool is not None
        for lo, hi in self.ranges:
            batch = read_range(self.fetch, lo, hi, self.codes, self.done.findings)
            self.tasks.append(((lo, hi), self.pool.submit(check_rows, batch)))
            self._collect(wait=False, ahead=2 * self.workers)

    def _collect(self, *, wait: bool, ahead: int | None = None) -> None:
        """Merge finished tasks in order: with `wait` all of them, with `ahead` waiting for
        the oldest while more than that many are pending."""
        while self.tasks and (
            wait or self.tasks[0][1].done() or (ahead is not None and len(self.tasks) > ahead)
        ):
            (lo, hi), task = self.tasks.pop(0)
            try:
                self._merge(task.result())
            except SnapshotUnavailable:  # that worker cannot read: check the range here
                self._check_here(lo, hi)

    def _check_here(self, lo: int, hi: int) -> None:
        self._merge(
            self.checks.check(*read_range(self.fetch, lo, hi, self.codes, self.done.findings))
        )

    def _merge(self, done: Transfers) -> None:
        self.done.add(done)
        if self.progress is not None:
            self.progress(self.done.count, self.total)


class _BareProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that does not import the program's main module first, as spawn
    otherwise does so that what it defines can be unpickled: the workers need only this
    module, and the main module may be the whole node (`sou`), half a second of imports."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")  # no file, no module name
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            sys.modules["__main__"] = main


class _BareSpawn(multiprocessing.context.SpawnContext):
    """Spawn (nothing of this process inherited), by `_BareProcess`."""

    Process = _BareProcess


# -- reading (in this process and in the workers) ------------------------------------------


def _fetcher(driver: Any) -> Fetch:
    # psycopg: results in binary form, which spares the server and the worker the hex of
    # every signature and hash.
    # With the bounds as parameters, the same few statements come back for every range:
    # psycopg prepares them after a few runs, and the server no longer plans each one.
    psycopg = type(driver).__module__.startswith("psycopg")

    def fetch(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cursor = driver.cursor(binary=True) if psycopg else driver.cursor()
        try:
            cursor.execute(sql.replace("?", "%s") if psycopg else sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    return fetch


def read_range(
    fetch: Fetch, lo: int, hi: int, codes: dict[int, str], findings: list[Finding]
) -> Batch:
    """The transfers with ids lo..hi, each with its postings and the transfer it references,
    and the log's leaves naming ids lo..hi. Postings of a transfer that is not there are
    findings."""
    rows = fetch(
        "SELECT id, kind, initiator, client_id, key_id, nonce, order_json, signature, ref_id, "
        "created_ms, once_key FROM transfers WHERE id BETWEEN ? AND ? ORDER BY id",
        (lo, hi),
    )
    legs: dict[int, list[Leg]] = {row[0]: [] for row in rows}
    for tid, account_id, currency, amount in fetch(
        "SELECT transfer_id, account_id, currency, amount FROM postings "
        "WHERE transfer_id BETWEEN ? AND ?",
        (lo, hi),
    ):
        code = codes.get(account_id)
        if code is None:
            code = f"#{account_id}"
        if tid in legs:
            legs[tid].append((code, currency, amount))
        else:
            findings.append(
                finding(
                    "postings",
                    "transfer {transfer}: postings of a missing transfer",
                    transfer=tid,
                    transfer_id=tid,
                )
            )
    originals = _originals(fetch, codes, {row[8] for row in rows if row[8] is not None})
    sealed: Sealed = {}
    for tid, idx, digest in fetch(
        "SELECT transfer_id, idx, hash FROM log_leaves WHERE transfer_id BETWEEN ? AND ?",
        (lo, hi),
    ):
        sealed.setdefault(tid, []).append((idx, bytes(digest)))
    work = [
        (row, legs[row[0]], originals.get(row[8]) if row[8] is not None else None) for row in rows
    ]
    return work, sealed


def _originals(fetch: Fetch, codes: dict[int, str], ids: Collection[int]) -> dict[int, Original]:
    """The transfers that orders refer to (refunded, paid out, corrected), as posting reads
    them (`repository.originals`: postings to an account that does not exist are left out).
    One whose stored order is unreadable is left out too: its own check says so."""
    if not ids:
        return {}
    listed = ", ".join(f"{i:d}" for i in sorted(ids))
    stored = fetch(f"SELECT id, kind, initiator, order_json FROM transfers WHERE id IN ({listed})")
    legs: dict[int, dict[str, int]] = {row[0]: {} for row in stored}
    for tid, account_id, amount in fetch(
        f"SELECT transfer_id, account_id, amount FROM postings WHERE transfer_id IN ({listed})"
    ):
        if tid in legs and account_id in codes:
            legs[tid][codes[account_id]] = amount
    found: dict[int, Original] = {}
    for tid, kind, initiator, order_json in stored:
        try:
            fields = orjson.loads(order_json)
        except ValueError:
            continue
        if isinstance(fields, dict):
            found[tid] = Original(tid, kind, initiator, fields, legs[tid])
    return found


# -- in a worker process -------------------------------------------------------------------

_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f-]+$")


class _Worker:
    def __init__(
        self,
        source: Source | None,
        local: str,
        origin: str,
        keys: dict[str, KeyState],
        codes: dict[int, str],
    ) -> None:
        self.source, self.codes = source, codes
        self.checks = TransferChecks(local, origin, keys)
        self.fetch: Fetch | None = None
        self.refused: str | None = None  # why the snapshot could not be reached

    def connect(self) -> Fetch:
        """One read transaction in the audit's snapshot, opened at the first range (the
        audit holds its own snapshot until every range is checked) and kept for the next."""
        if self.refused is not None:
            raise SnapshotUnavailable(self.refused)
        if self.fetch is None:
            assert self.source is not None
            dbapi = importlib.import_module(self.source.module)
            try:
                self.fetch = _fetcher(_open(dbapi, self.source))
            except dbapi.Error as exc:  # refused: the audit's process reads instead
                self.refused = f"{type(exc).__name__}: {exc}"
                raise SnapshotUnavailable(self.refused) from None
        return self.fetch


def _open(dbapi: Any, source: Source) -> Any:
    driver = dbapi.connect(*source.args, **source.kwargs)
    multiprocessing.util.Finalize(None, driver.close, exitpriority=0)  # as the worker exits
    if source.snapshot is None:  # SQLite
        driver.isolation_level = None  # transactions as we say
        driver.execute("PRAGMA query_only = ON")
        driver.execute("BEGIN")
        return driver
    if not _SNAPSHOT_ID.match(source.snapshot):
        raise ValueError(f"not a snapshot id: {source.snapshot!r}")
    driver.autocommit = True  # transactions as we say
    with driver.cursor() as cursor:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute(f"SET TRANSACTION SNAPSHOT '{source.snapshot}'")
    return driver


_worker: _Worker | None = None


def start_worker(
    source: Source | None,
    local: str,
    origin: str,
    keys: dict[str, KeyState],
    codes: dict[int, str],
) -> None:
    global _worker
    _worker = _Worker(source, local, origin, keys, codes)


def check_range(lo: int, hi: int) -> Transfers:
    """Read the transfers lo..hi in the audit's snapshot and check them."""
    assert _worker is not None, "start_worker runs first, as the pool's initializer"
    findings: list[Finding] = []
    result = _worker.checks.check(*read_range(_worker.connect(), lo, hi, _worker.codes, findings))
    result.findings[:0] = findings  # in the order the audit's process reports them
    return result


def check_rows(batch: Batch) -> Transfers:
    """Check transfers the audit's process read."""
    assert _worker is not None, "start_worker runs first, as the pool's initializer"
    return _worker.checks.check(*batch)
