"""Notices between the node's processes: "something happened on channel X, go and look".

`sou serve` runs one web process per core: the payment a customer confirms is posted by one
process while the point of sale waiting for it holds its live connection to another. A
notice carries no facts, only a wake-up with a short payload; whoever wakes reads what it
needs from the database, which stays the only truth (a notice lost on the way costs a
moment, never money: pages also look again every few seconds).

PostgreSQL: `NOTIFY` on one channel, a listening connection per process. SQLite: a small
`notices` table the publisher appends to and a thread per process polls every 50 ms (a
read of the latest rows in WAL mode takes microseconds and blocks nobody).

A notice wakes the publishing process's own waiters at once, without the database; the
other processes hear of it through the database, and each skips there the notices it
sent (a notice starts with its sender's mark). Publishing only queues the notice for the
other processes: a thread of the process writes all that is queued together (one `pg_notify`
round trip, or one SQLite transaction), so that no request waits on it, not even one
served by the event loop. On SQLite that thread writes on a connection of its own that does
not wait for the disk (`synchronous=NORMAL`): a notice is a wake-up, not a record, and the
next payment's commit makes it durable anyway. It still takes its turn with the node's
other writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from runtime.database import BUSY_TIMEOUT_S, write_turns

log = logging.getLogger(__name__)

PG_CHANNEL = "sou_notices"
POLL_S = 0.05  # SQLite: how often each process looks for new notices
KEEP_MS = 60_000  # SQLite: notices older than this are pruned
MAX_PAYLOAD = 200
PRUNE_EVERY_S = 10  # SQLite: how often old notices are deleted
MAX_BATCH = 1000  # notices written at once
SENDER = "\x1f"  # ends the sender's mark that starts a notice in the database


@dataclass(eq=False)
class Subscription:
    """A waiter on one channel, in one event loop: `wait` returns the payloads published
    since the last wait (empty after the timeout)."""

    channel: str
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)
    pending: list[str] = field(default_factory=list)

    def _deliver(self, payload: str) -> None:
        self.pending.append(payload)
        self.event.set()

    async def wait(self, timeout: float) -> list[str]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()
        got, self.pending = self.pending, []
        return got


class Notices:
    """Publish notices to every process of the node; subscribe to those of a channel."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._subscribers: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self.postgres = engine.dialect.name == "postgresql"
        self.sender = secrets.token_hex(4)

    # -- publishing ------------------------------------------------------------------------

    def publish(self, channel: str, payload: str = "") -> None:
        """Tell every process's subscribers of `channel`, within a moment; never blocks nor
        raises (a notice lost costs a moment: the waiter looks again by itself)."""
        notice = f"{self.sender}{SENDER}{channel}\t{payload}"[:MAX_PAYLOAD]
        self._dispatch(notice.partition(SENDER)[2])
        self._outbox.put(notice)
        if self._writer is None or not self._writer.is_alive():
            with contextlib.suppress(RuntimeError):  # no new thread at interpreter exit
                self._start_writing()

    def _start_writing(self) -> None:
        with self._lock:
            if self._stop.is_set() or (self._writer is not None and self._writer.is_alive()):
                return
            self._writer = threading.Thread(
                target=self._write_queued, daemon=True, name="sou-notices-out"
            )
            self._writer.start()

    def _write_queued(self) -> None:
        """Write what is queued, in batches, until the stop mark."""
        sqlite: _SqliteWriter | None = None
        try:
            while True:
                batch = [self._outbox.get()]
                with contextlib.suppress(queue.Empty):
                    while len(batch) < MAX_BATCH:
                        batch.append(self._outbox.get_nowait())
                messages = [m for m in batch if m is not None]
                try:
                    if messages and self.postgres:
                        self._notify(messages)
                    elif messages:
                        sqlite = sqlite or _SqliteWriter(self.engine.url.database or "")
                        sqlite.append(messages)
                except Exception:
                    log.warning("could not publish %d notices", len(messages), exc_info=True)
                if len(messages) < len(batch):  # the stop mark
                    return
        finally:
            if sqlite is not None:
                sqlite.close()

    def _notify(self, messages: list[str]) -> None:
        # One round trip outside any transaction: no BEGIN nor COMMIT to wait for.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(
                text("SELECT pg_notify(:c, m) FROM unnest(CAST(:ms AS text[])) AS m"),
                {"c": PG_CHANNEL, "ms": messages},
            )

    # -- subscribing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, channel: str) -> Iterator[Subscription]:
        """Subscribe the running event loop's task to `channel` for the `with` block."""
        sub = Subscription(channel, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.setdefault(channel, set()).add(sub)
            self._ensure_listening()
        try:
            yield sub
        finally:
            with self._lock:
                subs = self._subscribers.get(channel, set())
                subs.discard(sub)
                if not subs:
                    self._subscribers.pop(channel, None)

    def _received(self, notice: str) -> None:
        """A notice read from the database: for this process's waiters, unless it came from
        this very `Notices` (they were told when it was published)."""
        sender, marked, message = notice.partition(SENDER)
        if not marked:  # from a node that marks no sender
            message = notice
        elif sender == self.sender:
            return
        self._dispatch(message)

    def _dispatch(self, message: str) -> None:
        channel, _, payload = message.partition("\t")
        with self._lock:
            subs = list(self._subscribers.get(channel, ()))
        for sub in subs:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                sub.loop.call_soon_threadsafe(sub._deliver, payload)

    def _ensure_listening(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            listen = self._listen_postgres if self.postgres else self._poll_sqlite
            self._thread = threading.Thread(
                target=self._run, args=(listen,), daemon=True, name="sou-notices"
            )
            self._thread.start()

    def _run(self, listen: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                listen()
            except Exception:
                log.warning("listening for notices failed; again in a second", exc_info=True)
                self._stop.wait(1.0)

    # The listening connection is the process's own, outside the pool: the pool's share of
    # each process is counted for the payments (runtime/database.py).

    def _listen_postgres(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f"LISTEN {PG_CHANNEL}")
            while not self._stop.is_set():
                for notify in conn.notifies(timeout=1.0):
                    self._received(notify.payload)

    def _poll_sqlite(self) -> None:
        database = self.engine.url.database or ""
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, isolation_level=None)
        try:
            (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM notices").fetchone()
            while not self._stop.wait(POLL_S):
                rows = conn.execute(
                    "SELECT id, message FROM notices WHERE id > ? ORDER BY id", (last,)
                ).fetchall()
                for row_id, message in rows:
                    last = row_id
                    self._received(message)
        finally:
            conn.close()

    def close(self) -> None:
        """Write what is queued, then stop listening."""
        with self._lock:
            self._stop.set()
            writer = self._writer
        if writer is not None:
            self._outbox.put(None)
            writer.join(timeout=3)
        if self._thread is not None:
            self._thread.join(timeout=3)


class _SqliteWriter:
    """The publishing thread's own connection to the SQLite file: it appends notices
    without waiting for the disk, taking its turn with the node's writers."""

    def __init__(self, database: str) -> None:
        self.turns = write_turns(database)
        self.conn = sqlite3.connect(
            database, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
        )
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.pruned_at = 0.0  # time.monotonic()

    def append(self, messages: list[str]) -> None:
        """Append the notices, and now and then delete those older than KEEP_MS."""
        now = int(time.time() * 1000)
        prune = time.monotonic() - self.pruned_at > PRUNE_EVERY_S
        with self.turns:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany(
                    "INSERT INTO notices (message, created_ms) VALUES (?, ?)",
                    [(m, now) for m in messages],
                )
                if prune:
                    self.conn.execute("DELETE FROM notices WHERE created_ms < ?", (now - KEEP_MS,))
                self.conn.execute("COMMIT")
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
        if prune:
            self.pruned_at = time.monotonic()

    def close(self) -> None:
        self.conn.close()
