"""Notices between the node's processes: "something happened on channel X, go and look".

`sou serve` runs one web process per core: the payment a customer confirms is posted by one
process while the point of sale waiting for it holds its live connection to another. A
notice carries no facts, only a wake-up with a short payload; whoever wakes reads what it
needs from the database, which stays the only truth (a notice lost on the way costs a
moment, never money: pages also look again every few seconds).

PostgreSQL: `NOTIFY` on one channel, a listening connection per process. SQLite: a small
`notices` table the publisher appends to and a thread per process polls every 50 ms (a
read of the latest rows in WAL mode takes microseconds and blocks nobody).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

PG_CHANNEL = "sou_notices"
POLL_S = 0.05  # SQLite: how often each process looks for new notices
KEEP_MS = 60_000  # SQLite: notices older than this are pruned
MAX_PAYLOAD = 200


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
        self._last_prune = 0.0
        self.postgres = engine.dialect.name == "postgresql"

    # -- publishing ------------------------------------------------------------------------

    def publish(self, channel: str, payload: str = "") -> None:
        """Tell every process's subscribers of `channel`; never raises (a notice lost
        costs a moment: the waiter looks again by itself)."""
        message = f"{channel}\t{payload}"[:MAX_PAYLOAD]
        try:
            with self.engine.begin() as conn:
                if self.postgres:
                    conn.execute(text("SELECT pg_notify(:c, :m)"), {"c": PG_CHANNEL, "m": message})
                else:
                    now = int(time.time() * 1000)
                    conn.execute(
                        text("INSERT INTO notices (message, created_ms) VALUES (:m, :t)"),
                        {"m": message, "t": now},
                    )
                    if time.monotonic() - self._last_prune > 10:
                        self._last_prune = time.monotonic()
                        conn.execute(
                            text("DELETE FROM notices WHERE created_ms < :t"), {"t": now - KEEP_MS}
                        )
        except Exception:
            log.warning("could not publish a notice on %s", channel, exc_info=True)

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
                    self._dispatch(notify.payload)

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
                    self._dispatch(message)
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
