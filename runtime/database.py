"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production).

SQLite runs in WAL mode with full fsync at commit (an acknowledged transfer survives a crash),
foreign keys on, and every transaction opened with BEGIN IMMEDIATE so that writers queue on
the database lock instead of failing half-way; readers may ask for a deferred transaction
with `execution_options(sqlite_deferred=True)`. Writers of every process of the node take
turns on a lock file beside the database before BEGIN IMMEDIATE: the kernel wakes the next
one as soon as the lock is free, where SQLite's own busy handler would poll with sleeps of
up to 100 ms (which made the slowest payments wait that long under load).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

BUSY_TIMEOUT_S = 60


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the operator chose."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(
    url: str, *, pool_size: int = 16, max_overflow: int = 0, echo: bool = False
) -> Engine:
    """An engine that opens at most `pool_size` + `max_overflow` connections: a thread that
    needs one more waits for one to be given back (at most 30 s). The node's processes open
    no more than their share of `Settings.pool_size`, so that several nodes and processes
    on one PostgreSQL server stay under its `max_connections`."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        in_file = bool(database) and database != ":memory:" and "mode=memory" not in url
        turns = write_turns(database) if in_file and database else None
        factory = type("SouConnection", (_TurnTakingConnection,), {"turns": turns})
        engine = create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args={
                "check_same_thread": False,
                "timeout": BUSY_TIMEOUT_S,
                "factory": factory,
            },
        )
        _sqlite_events(engine)
        return engine
    # No pre-ping: it would cost a round trip per batch of payments; connections broken by
    # a server restart fail once, and the poster answers those callers with the error.
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=max_overflow, pool_recycle=3600
    )


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=60000",
        ):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        # A COMMIT refused by a deferred foreign key leaves SQLite's transaction open;
        # the next user of this pooled connection must not inherit it.
        if dbapi_connection.in_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_deferred", False):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_connection = conn.connection.dbapi_connection
        dbapi_connection.take_turn()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            dbapi_connection.give_turn()
            raise


def write_turns(database: str) -> Turns:
    """The turns the node's writers of this SQLite file take, whatever their connection."""
    return Turns(f"{database}.write-lock", BUSY_TIMEOUT_S)


class Turns:
    """One holder at a time among the threads and the processes of a node: a thread lock
    inside the process, an exclusive `flock` on `path` between processes. Not re-entrant."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = -1) -> None:
        self.path, self.timeout = path, timeout  # -1: wait as long as it takes
        self._threads = threading.Lock()
        self._fd: int | None = None

    def take(self) -> None:
        if not self._threads.acquire(timeout=self.timeout):
            raise TimeoutError(f"no turn on {self.path} in {self.timeout} s")
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def give(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def __enter__(self) -> None:
        self.take()

    def __exit__(self, *exc: object) -> None:
        self.give()


class AdvisoryTurns:
    """One holder at a time among every process that uses the same PostgreSQL database,
    on this machine or another: a thread lock inside the process, a session advisory lock
    `key` between processes, held on a connection of its own (PostgreSQL lets it go if
    that connection is lost). Not re-entrant."""

    def __init__(self, engine: Engine, key: int) -> None:
        self.engine, self.key = engine, key
        self._threads = threading.Lock()
        self._conn: Connection | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                conn.exec_driver_sql("SELECT pg_advisory_lock(%s)", (self.key,))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        assert conn is not None
        try:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (self.key,))
        except BaseException:
            conn.invalidate()  # its session ends, and the lock with it
            raise
        finally:
            conn.close()
            self._threads.release()


class _TurnTakingConnection(sqlite3.Connection):
    """A connection that gives its writing turn back once its transaction has ended,
    whichever way it ends (commit, rollback, the pool's reset, close)."""

    turns: Turns | None = None
    _holding = False

    def take_turn(self) -> None:
        if self.turns is not None and not self._holding:
            try:
                self.turns.take()
            except TimeoutError:  # as SQLite itself says it when its busy timeout ends
                raise sqlite3.OperationalError("database is locked") from None
            self._holding = True

    def give_turn(self) -> None:
        if self._holding and self.turns is not None:
            self._holding = False
            self.turns.give()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:  # a refused COMMIT leaves it open: keep the turn
                self.give_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_turn()


def read_only(engine: Engine) -> Engine:
    """Make every connection `engine` opens refuse writes: what only reads (the audit)
    changes nothing, even by mistake."""

    @event.listens_for(engine, "connect")
    def _refuse_writes(dbapi_connection: Any, _record: Any) -> None:
        if engine.dialect.name == "sqlite":
            dbapi_connection.execute("PRAGMA query_only = ON")
            return
        cursor = dbapi_connection.cursor()
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.close()
        dbapi_connection.commit()

    return engine.execution_options(sqlite_deferred=True)  # not BEGIN IMMEDIATE: a write
