"""Scheduled jobs: each due run happens once across all the node's processes and machines.

`sou serve` runs a process per core, and several nodes may share one PostgreSQL database,
so a timer per process would run a job once per process. Instead each job has a row in
`jobs`: when it is next due, and a lease. A process takes a due job with one atomic UPDATE
that succeeds only where the job is due and no lease is running, so exactly one process
gets it; it runs the job outside any transaction, then records the run and the next due
time in one transaction, if its lease is still its own.

A lease is a time, not a lock held by a connection: a process killed mid-run holds its job
until the lease runs out, then another takes it. So `lease_s` must exceed the longest run,
and the machines sharing a database must keep their clocks in step (NTP) to well under it.
A job may run again after a crash between its end and its record: jobs must be idempotent.

Jobs should take the time from `JobRun.started_ms` rather than read a clock: tests then
drive them with the scheduler's injected clock.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Row,
    Table,
    case,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError

from runtime.models import job_runs, jobs

log = logging.getLogger(__name__)

NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
NAME_CHARS = 96
OWNER_CHARS = 128
DEFAULT_LEASE_S = 300.0
SUMMARY_CHARS = 500  # of a run's summary or error, as stored and shown
KEEP_RUNS = 100  # recorded runs kept per job; older ones are removed as new ones come


def check_name(name: str, what: str = "job") -> str:
    """`name` if it is lowercase and dotted (`crowdfunding.close_campaigns`), else ValueError:
    the first part names the plugin, so that two plugins' jobs never share a row."""
    if len(name) > NAME_CHARS or not NAME.fullmatch(name):
        raise ValueError(
            f"{what} name {name!r} must be lowercase words joined by dots, such as "
            f"'crowdfunding.close_campaigns' (at most {NAME_CHARS} characters)"
        )
    return name


def _milliseconds(seconds: float, what: str) -> int:
    if not math.isfinite(seconds) or round(seconds * 1000) < 1:
        raise ValueError(f"{what} must be a positive number of seconds, not {seconds!r}")
    return round(seconds * 1000)


@dataclass(frozen=True)
class JobRun:
    """What a job is given when it runs: which run this is, and the scheduler's engine."""

    name: str
    owner: str
    due_ms: int  # when it was due (earlier than started_ms if it waited, e.g. node down)
    started_ms: int  # now, by the scheduler's clock
    lease_until_ms: int  # after this, another process may take the job
    engine: Engine = field(repr=False)
    clock: Callable[[], float] = field(repr=False, default=time.time)

    def lease_left_s(self) -> float:
        """Seconds before the lease runs out: a long job checks it between steps."""
        return self.lease_until_ms / 1000 - self.clock()


@dataclass(frozen=True)
class Job:
    """A job run every `every_s` seconds, once across the node. `run` returns a short
    summary of what it did (shown with the run), or None. It should not take longer than
    `lease_s`: past that, another process may run the job too."""

    name: str
    every_s: float
    run: Callable[[JobRun], str | None]
    lease_s: float = DEFAULT_LEASE_S

    def __post_init__(self) -> None:
        check_name(self.name)
        _milliseconds(self.every_s, "every_s")
        _milliseconds(self.lease_s, "lease_s")

    @property
    def every_ms(self) -> int:
        return _milliseconds(self.every_s, "every_s")

    @property
    def lease_ms(self) -> int:
        return _milliseconds(self.lease_s, "lease_s")


@dataclass(frozen=True)
class Run:
    """A recorded run of a job (a row of `job_runs`)."""

    id: int
    name: str
    owner: str
    due_ms: int
    started_ms: int
    finished_ms: int
    ok: bool
    summary: str | None
    error: str | None


@dataclass(frozen=True)
class FinishedRun(Run):
    # False: the run outlasted its lease and another process took the job meanwhile; the
    # next due time is left as that process set it.
    kept_lease: bool = True


@dataclass(frozen=True)
class JobState:
    """A job as a page shows it: its schedule, who runs it now, and its last run."""

    name: str
    every_ms: int
    next_due_ms: int
    lease_owner: str | None
    lease_until_ms: int | None
    last: Run | None


def process_owner() -> str:
    """A name for this process among those sharing the database: host and process id."""
    return f"{socket.gethostname()[: OWNER_CHARS - 12]}:{os.getpid()}"


def next_due(due_ms: int, every_ms: int, now_ms: int) -> int:
    """The first period boundary after `now_ms`, counting periods from `due_ms`: a job
    missed for ten periods runs once when it can, then keeps its rhythm."""
    return due_ms + every_ms * ((now_ms - due_ms) // every_ms + 1)


def describe(exc: BaseException) -> str:
    """What a run's error says: the exception's type and first line. For a database error,
    the driver's message only: SQLAlchemy's would carry the statement's parameters."""
    shown = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    lines = str(shown).strip().splitlines()
    said = f"{type(shown).__name__}: {lines[0]}" if lines else type(shown).__name__
    return _short(said)


def _short(text: str) -> str:
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


class Scheduler:
    """Runs the due jobs among `jobs` when asked (`run_due`); `SchedulerThread` asks every
    second. `owner` names this process in leases and runs: unique among the processes."""

    def __init__(
        self,
        engine: Engine,
        jobs: Iterable[Job],
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        for job in jobs:
            if job.name in self.jobs:
                raise ValueError(f"two jobs are named {job.name!r}")
            self.jobs[job.name] = job
        if not 0 < len(owner) <= OWNER_CHARS:
            raise ValueError(f"owner must have 1 to {OWNER_CHARS} characters")
        self._registered = False

    def _now_ms(self) -> int:
        return round(self.clock() * 1000)

    def register(self) -> None:
        """Make the rows of new jobs (due at once) and take a changed period into account:
        a job's next run is never more than its new period away."""
        now = self._now_ms()
        if self.jobs:
            with self.engine.begin() as conn:
                conn.execute(
                    insert_or_skip(conn, jobs),
                    [
                        {"name": job.name, "every_ms": job.every_ms, "next_due_ms": now}
                        for job in self.jobs.values()
                    ],
                )
                for job in self.jobs.values():
                    sooner = now + job.every_ms
                    conn.execute(
                        update(jobs)
                        .where(jobs.c.name == job.name, jobs.c.every_ms != job.every_ms)
                        .values(
                            every_ms=job.every_ms,
                            next_due_ms=case(
                                (jobs.c.next_due_ms > sooner, sooner), else_=jobs.c.next_due_ms
                            ),
                        )
                    )
        self._registered = True

    def run_due(self, *, keep_going: Callable[[], bool] = lambda: True) -> list[FinishedRun]:
        """Run each job that is due and that no other process holds, one after the other;
        `keep_going` is asked before each. A job that raises is recorded with its error
        and is due again at its next period; the others run all the same."""
        if not self._registered:
            self.register()
        finished = []
        for name in self._due():
            if not keep_going():
                break
            job = self.jobs[name]
            taken = self._take(job)
            if taken is not None:
                finished.append(self._run(job, taken))
        return finished

    def _due(self) -> list[str]:
        now = self._now_ms()
        query = (
            select(jobs.c.name)
            .where(jobs.c.name.in_(list(self.jobs)), jobs.c.next_due_ms <= now, _free(now))
            .order_by(jobs.c.next_due_ms, jobs.c.name)
        )
        with self.engine.connect().execution_options(sqlite_deferred=True) as conn:
            return list(conn.execute(query).scalars())

    def _take(self, job: Job) -> JobRun | None:
        """The lease on `job` if it is still due and free: one UPDATE, which only one
        process can win (SQLite: the write lock; PostgreSQL: the row lock, after which the
        loser's WHERE is checked again on the winner's row)."""
        now = self._now_ms()
        until = now + job.lease_ms
        with self.engine.begin() as conn:
            due = conn.execute(
                update(jobs)
                .where(jobs.c.name == job.name, jobs.c.next_due_ms <= now, _free(now))
                .values(lease_owner=self.owner, lease_until_ms=until)
                .returning(jobs.c.next_due_ms)
            ).scalar_one_or_none()
        if due is None:
            return None
        return JobRun(job.name, self.owner, int(due), now, until, self.engine, self.clock)

    def _run(self, job: Job, taken: JobRun) -> FinishedRun:
        summary: str | None = None
        error: str | None = None
        try:
            said = job.run(taken)
            summary = None if said is None else _short(str(said))
        except Exception as exc:
            log.exception("job %s failed; it runs again at its next period", job.name)
            error = describe(exc)
        finished_ms = self._now_ms()
        row: dict[str, Any] = {
            "name": job.name,
            "owner": self.owner,
            "due_ms": taken.due_ms,
            "started_ms": taken.started_ms,
            "finished_ms": finished_ms,
            "ok": error is None,
            "summary": summary,
            "error": error,
        }
        with self.engine.begin() as conn:
            kept = (
                conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.name == job.name,
                        jobs.c.lease_owner == self.owner,
                        jobs.c.lease_until_ms == taken.lease_until_ms,
                    )
                    .values(
                        next_due_ms=next_due(taken.due_ms, job.every_ms, finished_ms),
                        lease_owner=None,
                        lease_until_ms=None,
                    )
                ).rowcount
                == 1
            )
            run_id = conn.execute(job_runs.insert().returning(job_runs.c.id), row).scalar_one()
            _forget_old_runs(conn, job.name)
        if not kept:
            log.warning(
                "job %s ran past its lease of %s s: another process may have run it too",
                job.name,
                job.lease_s,
            )
        return FinishedRun(id=int(run_id), kept_lease=kept, **row)


def _free(now_ms: int) -> ColumnElement[bool]:
    return or_(jobs.c.lease_until_ms.is_(None), jobs.c.lease_until_ms < now_ms)


def insert_or_skip(conn: Connection, table: Table) -> Executable:
    """An INSERT into `table` (keyed by `name`) that leaves a row another process made
    first as it is, on either database."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["name"])
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=["name"])


def _forget_old_runs(conn: Connection, name: str) -> None:
    oldest_kept = (
        select(job_runs.c.id)
        .where(job_runs.c.name == name)
        .order_by(job_runs.c.id.desc())
        .offset(KEEP_RUNS - 1)
        .limit(1)
        .scalar_subquery()
    )
    conn.execute(delete(job_runs).where(job_runs.c.name == name, job_runs.c.id < oldest_kept))


class SchedulerThread:
    """Runs `scheduler.run_due()` every `interval_s` seconds in a daemon thread. A failure
    of the database (down, not migrated yet) is logged when it appears, not at every round,
    and again when it is over; the jobs wait meanwhile."""

    def __init__(self, scheduler: Scheduler, interval_s: float = 1.0) -> None:
        self.scheduler = scheduler
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sou-scheduler", daemon=True)
        self._problem: str | None = None

    def start(self) -> SchedulerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the job running now, if any (the other due jobs wait for a process)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._round()
            self._stop.wait(self.interval_s)

    def _round(self) -> None:
        try:
            self.scheduler.run_due(keep_going=lambda: not self._stop.is_set())
        except Exception as exc:
            # Its first line only: SQLAlchemy's text goes on with the statement's parameters,
            # which change every round (the time), and would make each round a new problem.
            problem = describe(exc)
            if problem == self._problem:
                log.debug("scheduled jobs still wait: %s", problem)
            else:
                log.exception("scheduled jobs cannot run; will retry")
            self._problem = problem
            return
        if self._problem is not None:
            log.info("scheduled jobs run again (they had failed: %s)", self._problem)
            self._problem = None


# -- what a page shows --------------------------------------------------------------------


def _run_of(row: Row[tuple[object, ...]] | None) -> Run | None:
    if row is None or row.id is None:
        return None
    return Run(
        id=int(row.id),
        name=row.name,
        owner=row.owner,
        due_ms=int(row.due_ms),
        started_ms=int(row.started_ms),
        finished_ms=int(row.finished_ms),
        ok=bool(row.ok),
        summary=row.summary,
        error=row.error,
    )


def last_runs(conn: Connection, limit: int = 50, *, name: str | None = None) -> list[Run]:
    """The latest recorded runs, newest first; of one job if `name` is given."""
    query = select(job_runs).order_by(job_runs.c.id.desc()).limit(limit)
    if name is not None:
        query = query.where(job_runs.c.name == name)
    return [run for row in conn.execute(query) if (run := _run_of(row)) is not None]


def job_states(conn: Connection) -> Sequence[JobState]:
    """Every job the database knows, by name, each with its last recorded run."""
    runs_of_job = job_runs.alias("runs_of_job")
    last = (
        select(runs_of_job.c.id)
        .where(runs_of_job.c.name == jobs.c.name)
        .order_by(runs_of_job.c.id.desc())
        .limit(1)
        .correlate(jobs)
        .scalar_subquery()
    )
    query = (
        select(
            jobs.c.name.label("job"),
            jobs.c.every_ms,
            jobs.c.next_due_ms,
            jobs.c.lease_owner,
            jobs.c.lease_until_ms,
            *job_runs.c,
        )
        .select_from(jobs.outerjoin(job_runs, job_runs.c.id == last))
        .order_by(jobs.c.name)
    )
    return [
        JobState(
            name=row.job,
            every_ms=int(row.every_ms),
            next_due_ms=int(row.next_due_ms),
            lease_owner=row.lease_owner,
            lease_until_ms=None if row.lease_until_ms is None else int(row.lease_until_ms),
            last=_run_of(row),
        )
        for row in conn.execute(query)
    ]
