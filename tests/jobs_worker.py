"""Scheduler processes for tests/test_jobs.py and tests/test_reactions.py.

As a script, a node process that takes the job `tests.held` and keeps it until killed:

    python tests/jobs_worker.py DATABASE_URL --now-ms N [--lease-s 60]

It prints `running` (flushed) once its run has begun, that is once its lease is committed.

`race_jobs` and `race_deliveries` are bodies of processes racing others to run the same
jobs, round after round; they live here so that spawned children import little.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, text

from runtime.database import make_engine
from runtime.jobs import Job, JobRun, Scheduler
from runtime.reactions import LedgerEvent, Reaction, reaction_job

HELD = "tests.held"
RECORDER = "tests.recorder"


class Clock:
    """A clock the test moves by hand, in milliseconds."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def make_effect_tables(engine: Engine) -> None:
    """What the test jobs and reactions write, so that the test can count their runs."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE job_effects (name VARCHAR(96) NOT NULL, "
                "due_ms BIGINT NOT NULL, owner VARCHAR(128) NOT NULL)"
            )
        )
        conn.execute(
            text(
                "CREATE TABLE reaction_seen (position BIGINT NOT NULL, owner VARCHAR(128) NOT NULL)"
            )
        )


def effects(engine: Engine) -> list[tuple[str, int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, due_ms, owner FROM job_effects"))
        return sorted((r.name, int(r.due_ms), r.owner) for r in rows)


def counting_job(name: str, every_s: float, lease_s: float = 60.0) -> Job:
    """A job whose every run leaves a row in `job_effects`."""

    def run(job_run: JobRun) -> str:
        with job_run.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO job_effects (name, due_ms, owner) VALUES (:n, :d, :o)"),
                {"n": job_run.name, "d": job_run.due_ms, "o": job_run.owner},
            )
        return f"ran for {job_run.due_ms}"

    return Job(name, every_s, run, lease_s)


def recorder(engine: Engine, owner: str) -> Reaction:
    """A reaction that leaves a row in `reaction_seen` for every event it is given."""

    def handle(event: LedgerEvent) -> None:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO reaction_seen (position, owner) VALUES (:p, :o)"),
                {"p": event.position, "o": owner},
            )

    return Reaction(RECORDER, handle)


def _rounds(
    url: str,
    owner: str,
    make_jobs: Any,
    rounds: int,
    base_ms: int,
    period_ms: int,
    barrier: Any,
    results: Any,
) -> None:
    """Round r: every process waits for the others, sets its clock to base + r periods and
    runs what is due. Puts on `results` (owner, runs it finished, errors)."""
    engine = make_engine(url, pool_size=4)
    finished, errors = 0, list[str | None]()
    try:
        clock = Clock(base_ms)
        scheduler = Scheduler(engine, make_jobs(engine), owner=owner, clock=clock)
        for r in range(rounds):
            barrier.wait(timeout=120)
            clock.ms = base_ms + r * period_ms
            runs = scheduler.run_due()
            finished += len(runs)
            errors.extend(run.error for run in runs if not run.ok)
    except BaseException as exc:
        errors.append(repr(exc))
        barrier.abort()
    finally:
        results.put((owner, finished, errors))
        engine.dispose()


def race_jobs(
    url: str,
    owner: str,
    names: list[str],
    rounds: int,
    base_ms: int,
    period_ms: int,
    barrier: Any,
    results: Any,
) -> None:
    """One node process running the counting jobs `names`, each due every period."""
    _rounds(
        url,
        owner,
        lambda _engine: [counting_job(name, period_ms / 1000) for name in names],
        rounds,
        base_ms,
        period_ms,
        barrier,
        results,
    )


def race_deliveries(
    url: str, owner: str, rounds: int, limit: int, base_ms: int, barrier: Any, results: Any
) -> None:
    """One node process delivering the recorder reaction, `limit` events a run, as a job
    due every second."""
    _rounds(
        url,
        owner,
        lambda engine: [reaction_job(recorder(engine, owner), every_s=1.0, limit=limit)],
        rounds,
        base_ms,
        1000,
        barrier,
        results,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="take a job and hold it until killed")
    parser.add_argument("url")
    parser.add_argument("--now-ms", type=int, required=True)
    parser.add_argument("--lease-s", type=float, default=60.0)
    args = parser.parse_args(argv)

    def hold(_run: JobRun) -> str:
        print("running", flush=True)
        threading.Event().wait()  # until SIGKILL
        return "never"

    engine = make_engine(args.url, pool_size=2)
    job = Job(HELD, 3600, hold, args.lease_s)
    Scheduler(engine, [job], owner="doomed", clock=Clock(args.now_ms)).run_due()


if __name__ == "__main__":
    main()
