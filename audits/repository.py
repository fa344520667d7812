"""Every query of the audit runs (`audit_runs`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError

from audits.models import FAILED, OK, RUNNING, audit_runs


class AlreadyRunning(Exception):
    """Another run holds the one running place (the partial unique index said so)."""


def running(conn: Connection, beating_since_ms: int | None = None) -> RowMapping | None:
    """The running run; with `beating_since_ms`, only if its heartbeat is that recent."""
    query = select(audit_runs).where(audit_runs.c.status == RUNNING)
    if beating_since_ms is not None:
        query = query.where(audit_runs.c.heartbeat_ms >= beating_since_ms)
    return conn.execute(query).mappings().first()


def abandon_stale(conn: Connection, now_ms: int, stale_before_ms: int) -> int | None:
    """Mark failed the running run whose heartbeat stopped before `stale_before_ms` (its
    process died): the id of the run taken over, if any."""
    stale = conn.execute(
        update(audit_runs)
        .where(audit_runs.c.status == RUNNING, audit_runs.c.heartbeat_ms < stale_before_ms)
        .values(
            status=FAILED,
            finished_ms=now_ms,
            error="stopped: its process ended before the audit did; taken over by a new run",
        )
        .returning(audit_runs.c.id)
    ).first()
    return None if stale is None else int(stale.id)


def insert_running(conn: Connection, now_ms: int, started_by: str, asked_full: bool) -> int:
    """A new running run; AlreadyRunning if another holds the place. Runs in a savepoint so
    that the caller's transaction stays usable after the refusal."""
    try:
        with conn.begin_nested():
            made = conn.execute(
                insert(audit_runs)
                .values(
                    started_ms=now_ms,
                    heartbeat_ms=now_ms,
                    started_by=started_by,
                    asked_full=asked_full,
                    status=RUNNING,
                    done=0,
                )
                .returning(audit_runs.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise AlreadyRunning() from exc
    return int(made)


def set_plan(conn: Connection, run_id: int, full: bool, why_full: str | None) -> None:
    """Whether the run checks everything, and why when it was asked to resume."""
    conn.execute(
        update(audit_runs)
        .where(audit_runs.c.id == run_id, audit_runs.c.status == RUNNING)
        .values(full=full, why_full=why_full)
    )


def beat(conn: Connection, run_id: int, now_ms: int, done: int, total: int | None) -> None:
    """The run's progress and heartbeat, while it is still running."""
    conn.execute(
        update(audit_runs)
        .where(audit_runs.c.id == run_id, audit_runs.c.status == RUNNING)
        .values(heartbeat_ms=now_ms, done=done, total=total)
    )


def finish(conn: Connection, run_id: int, now_ms: int, **outcome: Any) -> bool:
    """Record the outcome of a run still running; False if it was taken over meanwhile."""
    changed = conn.execute(
        update(audit_runs)
        .where(audit_runs.c.id == run_id, audit_runs.c.status == RUNNING)
        .values(finished_ms=now_ms, heartbeat_ms=now_ms, **outcome)
    )
    return changed.rowcount == 1


def run(conn: Connection, run_id: int) -> RowMapping | None:
    return conn.execute(select(audit_runs).where(audit_runs.c.id == run_id)).mappings().first()


def runs(conn: Connection, limit: int, before_id: int | None = None) -> list[RowMapping]:
    """The latest runs first, without their report and state (the list needs neither)."""
    listed = [c for c in audit_runs.c if c.name not in ("report", "state", "state_signature")]
    query = select(*listed).order_by(audit_runs.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(audit_runs.c.id < before_id)
    return list(conn.execute(query).mappings())


def latest(conn: Connection, statuses: tuple[str, ...]) -> RowMapping | None:
    return (
        conn.execute(
            select(audit_runs)
            .where(audit_runs.c.status.in_(statuses))
            .order_by(audit_runs.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )


def latest_clean(conn: Connection) -> RowMapping | None:
    return latest(conn, (OK,))


def latest_full_started_ms(conn: Connection) -> int | None:
    """When the last full run that finished with an outcome started."""
    found = conn.execute(
        select(audit_runs.c.started_ms)
        .where(audit_runs.c.full.is_(True), audit_runs.c.status.in_((OK, "findings")))
        .order_by(audit_runs.c.id.desc())
        .limit(1)
    ).scalar()
    return None if found is None else int(found)
