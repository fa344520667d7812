"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production).

SQLite runs in WAL mode with full fsync at commit (an acknowledged transfer survives a crash),
foreign keys on, and every transaction opened with BEGIN IMMEDIATE so that writers queue on
the database lock instead of failing half-way; readers may ask for a deferred transaction
with `execution_options(sqlite_deferred=True)`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the operator chose."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int = 16, echo: bool = False) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=64,
            connect_args={"check_same_thread": False, "timeout": 60},
        )
        _sqlite_events(engine)
        return engine
    # No pre-ping: it would cost a round trip per batch of payments; connections broken by
    # a server restart fail once, and the poster answers those callers with the error.
    return create_engine(url, echo=echo, pool_size=pool_size, max_overflow=64, pool_recycle=3600)


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
            dbapi_connection.execute("ROLLBACK")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        deferred = conn.get_execution_options().get("sqlite_deferred", False)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")
