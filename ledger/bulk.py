"""Statements for the hot paths (posting a batch, sealing a round): one per batch.

They are plain SQL in the driver's parameter style: SQLAlchemy's compilation and per-row
parameter processing cost more than the database work there. On PostgreSQL a whole batch
travels as one JSON parameter (json_populate_recordset / json_array_elements_text), which
keeps statement texts constant (the driver caches their parsing) and spares the driver
from adapting thousands of values one by one; the statements of a step are sent together
in one pipeline. SQLite, in-process, takes plain executemany.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

Statement = tuple[str, Any]  # SQL and its parameters (a list of rows means executemany)


def postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def param(conn: Connection, name: str) -> str:
    return f"%({name})s" if conn.dialect.paramstyle == "pyformat" else f":{name}"


def among(
    conn: Connection, column: str, values: Collection[Any], sql_type: str = "bigint"
) -> tuple[str, dict[str, Any]]:
    """`column IN (values)` and its parameters."""
    if postgres(conn):
        cast = "" if sql_type == "text" else f"::{sql_type}"
        return (
            f"{column} IN (SELECT json_array_elements_text(%(among)s::json){cast})",
            {"among": json.dumps(list(values))},
        )
    params = {f"v{i}": v for i, v in enumerate(values)}
    return f"{column} IN ({', '.join(':' + k for k in params)})", params


def insert(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> Statement:
    names = ", ".join(columns)
    if postgres(conn):
        return (
            f"INSERT INTO {table} ({names}) SELECT {names} FROM "
            f"json_populate_recordset(NULL::{table}, %(rows)s::json)",
            {"rows": json.dumps(list(rows), default=_bytea)},
        )
    return (f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + c for c in columns)})", rows)


def _bytea(value: Any) -> str:
    """What JSON cannot carry as is (the encoder asks only for that): bytes, as bytea's text
    form, \\x followed by hex. A row's keys other than the columns are ignored."""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    raise TypeError(f"{type(value).__name__} is not a column value")


def add_to_balances(conn: Connection, deltas: dict[int, int]) -> Statement:
    if postgres(conn):
        return (
            "UPDATE accounts SET balance = balance + d.delta FROM json_to_recordset("
            "%(deltas)s::json) AS d(id bigint, delta bigint) WHERE accounts.id = d.id",
            {"deltas": json.dumps([{"id": k, "delta": v} for k, v in deltas.items()])},
        )
    return (
        "UPDATE accounts SET balance = balance + :delta WHERE id = :id",
        [{"id": k, "delta": v} for k, v in deltas.items()],
    )


def fetch(conn: Connection, statements: Sequence[Statement]) -> list[list[Any]]:
    """The rows of each statement ([] for those that return none), in one round trip on
    PostgreSQL."""
    if not postgres(conn):
        results = [conn.exec_driver_sql(sql, params) for sql, params in statements]
        return [list(r) if r.returns_rows else [] for r in results]
    driver = _driver(conn)[0]
    cursors = [driver.cursor() for _ in statements]
    try:
        _pipelined(conn, list(zip(cursors, statements, strict=True)))
        return [cursor.fetchall() if cursor.description else [] for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def rows(conn: Connection, sql: str, *, binary: bool = False) -> list[tuple[Any, ...]]:
    """All rows of a parameterless query, straight from the driver's cursor, for reads of
    hundreds of thousands of rows (the audit) where each row's wrapping would show.
    `binary`: on PostgreSQL, results in binary form, which spares both sides writing and
    parsing the hex of each bytea (hashes, signatures); for columns of built-in types."""
    driver, dbapi = _driver(conn)
    cursor = driver.cursor(binary=True) if binary and postgres(conn) else driver.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dbapi.Error) from exc
    finally:
        cursor.close()


def _pipelined(conn: Connection, work: Sequence[tuple[Any, Statement]]) -> None:
    """Execute each statement on its cursor, all in one pipeline (one round trip). A failed
    statement aborts those after it; the error raised is the failed statement's own, as
    SQLAlchemy's exception. It is held until the pipeline has ended: an error leaving the
    pipeline's block makes psycopg log a warning for the statements it then finds aborted
    ("error ignored terminating ...: pipeline aborted"), once for every sealing round that
    another process won."""
    driver, dbapi = _driver(conn)
    failed: Exception | None = None
    try:
        with driver.pipeline():
            try:
                for cursor, (sql, params) in work:
                    cursor.execute(sql, params)
            except dbapi.Error as exc:  # an earlier statement's error, seen while sending
                failed = exc
    except dbapi.Error as exc:  # the first error in the results; or, after `failed`, the
        failed = failed or exc  # statements it aborted
    if failed is not None:
        sent = "\n".join(sql for _, (sql, _) in work)  # which one failed, the error says
        raise DBAPIError.instance(sent, None, failed, dbapi.Error) from failed


def _driver(conn: Connection) -> tuple[Any, Any]:
    driver, dbapi = conn.connection.driver_connection, conn.dialect.dbapi
    assert driver is not None and dbapi is not None
    return driver, dbapi


def run(conn: Connection, statements: Sequence[Statement], *, commit: bool = False) -> None:
    """Execute the statements in the connection's transaction (pipelined on PostgreSQL),
    and then commit it if asked (in the same round trip on PostgreSQL); errors come back as
    SQLAlchemy's exceptions, as from any other statement."""
    if not postgres(conn):
        for sql, params in statements:
            conn.exec_driver_sql(sql, params)
        if commit:
            conn.commit()
        return
    with _driver(conn)[0].cursor() as cursor:
        sent = [*statements, *([("COMMIT", None)] if commit else [])]
        _pipelined(conn, [(cursor, statement) for statement in sent])
    if commit:
        conn.commit()  # the driver knows it is done: this only closes SQLAlchemy's transaction
