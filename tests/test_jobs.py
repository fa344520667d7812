"""Scheduled jobs run once across the node's processes, on SQLite and PostgreSQL.

The scheduler's clock is injected: the tests move time by hand, and never wait on it.
Runs are counted in a table the jobs themselves write (`job_effects`), not only in the
scheduler's own record.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from importlib.resources import files
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from ledger.models import metadata
from runtime.database import make_engine
from runtime.jobs import (
    KEEP_RUNS,
    SUMMARY_CHARS,
    Job,
    JobRun,
    Scheduler,
    SchedulerThread,
    job_states,
    last_runs,
)
from runtime.models import event_cursors, job_runs, jobs
from runtime.node import migrate
from tests import jobs_worker
from tests.jobs_worker import Clock, counting_job, effects, make_effect_tables

ROOT = Path(__file__).resolve().parent.parent
BASE_MS = 1_800_000_000_000  # an instant on the tests' clock
HOUR = 3600.0
HOUR_MS = 3_600_000


@pytest.fixture
def effect_tables(engine: Engine) -> Engine:
    make_effect_tables(engine)
    return engine


def due(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(jobs.c.next_due_ms).where(jobs.c.name == name)).scalar_one())


def job_row(engine: Engine, name: str) -> tuple[int, int, str | None, int | None]:
    with engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.name == name)).one()
    return row.every_ms, row.next_due_ms, row.lease_owner, row.lease_until_ms


def scheduler(engine: Engine, *job_list: Job, owner: str = "here", at: int = BASE_MS) -> Scheduler:
    return Scheduler(engine, job_list, owner=owner, clock=Clock(at))


def at(scheduler: Scheduler, ms: int) -> Scheduler:
    assert isinstance(scheduler.clock, Clock)
    scheduler.clock.ms = ms
    return scheduler


# -- one process -------------------------------------------------------------------------


def test_a_new_job_runs_at_once_then_once_each_period(effect_tables: Engine) -> None:
    engine = effect_tables
    closing = scheduler(engine, counting_job("crowdfunding.close_campaigns", HOUR))
    closing.register()
    assert job_row(engine, "crowdfunding.close_campaigns") == (HOUR_MS, BASE_MS, None, None)

    [first] = closing.run_due()
    assert (first.name, first.ok, first.due_ms, first.started_ms) == (
        "crowdfunding.close_campaigns",
        True,
        BASE_MS,
        BASE_MS,
    )
    assert first.summary == f"ran for {BASE_MS}" and first.kept_lease
    assert job_row(engine, "crowdfunding.close_campaigns") == (
        HOUR_MS,
        BASE_MS + HOUR_MS,
        None,
        None,
    )
    assert closing.run_due() == []
    assert at(closing, BASE_MS + HOUR_MS - 1).run_due() == []
    [second] = at(closing, BASE_MS + HOUR_MS).run_due()
    assert second.due_ms == BASE_MS + HOUR_MS
    assert [due for _, due, _ in effects(engine)] == [BASE_MS, BASE_MS + HOUR_MS]


def test_a_job_missed_while_the_node_was_down_runs_once(effect_tables: Engine) -> None:
    engine = effect_tables
    node = scheduler(engine, counting_job("amap.remind_producers", HOUR))
    node.run_due()  # registers, and runs at once

    # The node is down for ten hours and a bit: one run when it is back, not ten.
    back = BASE_MS + 10 * HOUR_MS + 1234
    [run] = at(node, back).run_due()
    assert run.due_ms == BASE_MS + HOUR_MS and run.started_ms == back
    assert at(node, back + 1).run_due() == []
    # ... and it keeps its rhythm: next at the first boundary after it came back.
    assert due(engine, "amap.remind_producers") == BASE_MS + 11 * HOUR_MS
    assert len(effects(engine)) == 2


def test_a_failing_job_is_recorded_and_runs_again_next_period(
    effect_tables: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = effect_tables
    attempts: list[int] = []

    def release_escrow(run: JobRun) -> str:
        attempts.append(run.started_ms)
        if len(attempts) == 1:
            raise ValueError("campaign 7 has no escrow\n" + "x" * 2000)
        return "released"

    node = scheduler(
        engine,
        Job("crowdfunding.release_escrow", HOUR, release_escrow),
        counting_job("amap.remind_producers", HOUR),
    )
    with caplog.at_level(logging.ERROR, logger="runtime.jobs"):
        runs = {run.name: run for run in node.run_due()}
    failed = runs["crowdfunding.release_escrow"]
    assert not failed.ok and failed.summary is None
    assert failed.error == "ValueError: campaign 7 has no escrow"
    assert runs["amap.remind_producers"].ok  # the other job ran all the same
    assert any(
        "crowdfunding.release_escrow" in r.getMessage() and r.exc_info for r in caplog.records
    )
    with engine.connect() as conn:
        [recorded] = last_runs(conn, name="crowdfunding.release_escrow")
    assert (recorded.ok, recorded.error) == (False, "ValueError: campaign 7 has no escrow")

    # Not retried before its next period; run then.
    assert at(node, BASE_MS + HOUR_MS - 1).run_due() == []
    again = {run.name: run for run in at(node, BASE_MS + HOUR_MS).run_due()}
    assert again["crowdfunding.release_escrow"].ok
    assert again["crowdfunding.release_escrow"].summary == "released"
    assert attempts == [BASE_MS, BASE_MS + HOUR_MS]


def test_an_error_is_stored_short_and_without_the_statement_s_parameters(
    engine: Engine,
) -> None:
    def long_story(_run: JobRun) -> None:
        raise RuntimeError("y" * 5000)

    def bad_query(run: JobRun) -> None:
        with run.engine.begin() as conn:
            conn.execute(text("INSERT INTO no_such_table VALUES (:token)"), {"token": "s3cr3t"})

    runs = {
        run.name: run
        for run in scheduler(
            engine,
            Job("tests.long_story", HOUR, long_story),
            Job("tests.bad_query", HOUR, bad_query),
        ).run_due()
    }
    long_error = runs["tests.long_story"].error
    assert long_error is not None and len(long_error) == SUMMARY_CHARS
    assert long_error.startswith("RuntimeError: yyy")
    bad = runs["tests.bad_query"].error
    assert bad is not None and "no_such_table" in bad and "s3cr3t" not in bad


def test_a_run_that_outlasts_its_lease_leaves_the_schedule_to_the_one_that_took_over(
    effect_tables: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = effect_tables
    late = BASE_MS + 61_000  # past the slow run's 60 s lease
    other = scheduler(engine, counting_job("tests.slow", HOUR), owner="other", at=late)
    taken_over: list[object] = []

    def slow(run: JobRun) -> str:
        # While this run is still going, its lease runs out and another process takes the job.
        taken_over.extend(other.run_due())
        return "slow"

    first = scheduler(engine, Job("tests.slow", HOUR, slow, lease_s=60), owner="first")
    with caplog.at_level(logging.WARNING, logger="runtime.jobs"):
        [run] = first.run_due()
    assert len(taken_over) == 1 and not run.kept_lease
    assert "tests.slow ran past its lease" in caplog.text
    # The schedule is the one the other process set, from its own run; both runs recorded.
    assert job_row(engine, "tests.slow") == (HOUR_MS, BASE_MS + HOUR_MS, None, None)
    with engine.connect() as conn:
        assert sorted(r.owner for r in last_runs(conn, name="tests.slow")) == ["first", "other"]


def test_a_changed_period_applies_from_now(engine: Engine) -> None:
    daily = scheduler(engine, Job("tests.report", 24 * HOUR, lambda _run: None))
    daily.run_due()
    assert due(engine, "tests.report") == BASE_MS + 24 * HOUR_MS

    # A new release runs it hourly: its next run comes within the new period.
    later = BASE_MS + 5_000
    scheduler(engine, Job("tests.report", HOUR, lambda _run: None), at=later).register()
    assert job_row(engine, "tests.report")[:2] == (HOUR_MS, later + HOUR_MS)
    # Back to daily: the next run stays where it was.
    scheduler(engine, Job("tests.report", 24 * HOUR, lambda _run: None), at=later).register()
    assert job_row(engine, "tests.report")[:2] == (24 * HOUR_MS, later + HOUR_MS)


@pytest.mark.parametrize(
    "name", ["close_campaigns", "Crowdfunding.close", "crowd-funding.close", "a..b", "a.b.", ".a"]
)
def test_a_job_name_is_lowercase_and_dotted(name: str) -> None:
    with pytest.raises(ValueError, match="lowercase words joined by dots"):
        Job(name, HOUR, lambda _run: None)


def test_periods_leases_and_names_are_checked(engine: Engine) -> None:
    Job("a.b", 0.001, lambda _run: None)
    Job("amap.contracts_2026.remind", HOUR, lambda _run: None)
    for every in (0, -1, 0.0001, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="every_s"):
            Job("a.b", every, lambda _run: None)
    with pytest.raises(ValueError, match="lease_s"):
        Job("a.b", HOUR, lambda _run: None, lease_s=0)
    with pytest.raises(ValueError, match="lowercase"):
        Job("a." + "b" * 95, HOUR, lambda _run: None)
    with pytest.raises(ValueError, match="two jobs"):
        Scheduler(
            engine, [Job("a.b", 1, lambda _run: None), Job("a.b", 2, lambda _run: None)], owner="x"
        )


def test_a_page_shows_each_job_with_its_last_run(effect_tables: Engine) -> None:
    engine = effect_tables

    def broken(_run: JobRun) -> None:
        raise KeyError("campaign")

    node = scheduler(
        engine,
        counting_job("amap.remind_producers", HOUR),
        Job("crowdfunding.release_escrow", HOUR, broken),
    )
    node.run_due()
    at(node, BASE_MS + HOUR_MS).run_due()
    never = scheduler(engine, Job("zz.never_run", HOUR, lambda _run: None), at=BASE_MS + 1)
    never.register()
    with engine.connect() as conn:
        states = {state.name: state for state in job_states(conn)}
        runs = last_runs(conn, 3)
    assert list(states) == ["amap.remind_producers", "crowdfunding.release_escrow", "zz.never_run"]
    reminder = states["amap.remind_producers"]
    assert reminder.last is not None
    assert (reminder.last.ok, reminder.last.summary, reminder.last.started_ms) == (
        True,
        f"ran for {BASE_MS + HOUR_MS}",
        BASE_MS + HOUR_MS,
    )
    escrow = states["crowdfunding.release_escrow"].last
    assert escrow is not None and (escrow.ok, escrow.error) == (False, "KeyError: 'campaign'")
    assert states["zz.never_run"].last is None
    assert states["zz.never_run"].next_due_ms == BASE_MS + 1
    assert len(runs) == 3 and runs == sorted(runs, key=lambda r: -r.id)


def test_old_runs_are_forgotten(engine: Engine) -> None:
    node = scheduler(engine, Job("tests.often", 1, lambda run: str(run.due_ms)))
    for second in range(KEEP_RUNS + 5):
        assert len(at(node, BASE_MS + 1000 * second).run_due()) == 1
    with engine.connect() as conn:
        kept = last_runs(conn, 1000)
    assert len(kept) == KEEP_RUNS
    assert kept[0].summary == str(BASE_MS + 1000 * (KEEP_RUNS + 4))
    assert kept[-1].summary == str(BASE_MS + 1000 * 5)


# -- several processes ---------------------------------------------------------------------

PROCESSES = 3
ROUNDS = 40
RACED = ["tests.first", "tests.second"]


def test_processes_racing_run_each_due_job_exactly_once(effect_tables: Engine, db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(PROCESSES), context.Queue()
    children = [
        context.Process(
            target=jobs_worker.race_jobs,
            daemon=True,
            args=(db_url, f"process-{k}", RACED, ROUNDS, BASE_MS, 60_000, barrier, queue),
        )
        for k in range(PROCESSES)
    ]
    reports = run_children(children, queue)

    assert [errors for _, _, errors in reports] == [[]] * PROCESSES
    assert sum(finished for _, finished, _ in reports) == len(RACED) * ROUNDS
    expected = sorted((name, BASE_MS + r * 60_000) for name in RACED for r in range(ROUNDS))
    assert [(name, due) for name, due, _ in effects(effect_tables)] == expected
    with effect_tables.connect() as conn:
        recorded = conn.execute(select(job_runs.c.name, job_runs.c.due_ms)).all()
    assert sorted((r.name, r.due_ms) for r in recorded) == expected


def run_children(children: Sequence[BaseProcess], queue: Any) -> list[Any]:
    """Start the children, and collect the report each puts on `queue`."""
    for child in children:
        child.start()
    try:
        reports = [queue.get(timeout=180) for _ in children]
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    assert [c.exitcode for c in children] == [0] * len(children)
    return reports


def test_a_job_held_by_a_killed_process_is_taken_after_its_lease(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    errors = (tmp_path / "worker.stderr").open("w+")
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "jobs_worker.py"), db_url, "--now-ms", str(BASE_MS)],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        cwd=ROOT,
    )
    try:
        line = read_line(worker)
        if line != "running\n":
            errors.seek(0)
            pytest.fail(f"the worker did not start its run: {line!r} {errors.read()}")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL
    assert job_row(engine, jobs_worker.HELD) == (HOUR_MS, BASE_MS, "doomed", BASE_MS + 60_000)

    def take_over(run: JobRun) -> str:
        return f"taken over from {run.due_ms}"

    survivor = scheduler(
        engine, Job(jobs_worker.HELD, HOUR, take_over), owner="survivor", at=BASE_MS + 59_999
    )
    assert survivor.run_due() == []  # the dead process's lease is still running
    assert at(survivor, BASE_MS + 60_000).run_due() == []  # to its last millisecond
    [run] = at(survivor, BASE_MS + 60_001).run_due()
    assert (run.owner, run.due_ms, run.summary) == (
        "survivor",
        BASE_MS,
        f"taken over from {BASE_MS}",
    )
    assert job_row(engine, jobs_worker.HELD) == (HOUR_MS, BASE_MS + HOUR_MS, None, None)
    with engine.connect() as conn:
        assert [r.owner for r in last_runs(conn)] == ["survivor"]


def read_line(worker: subprocess.Popen[str]) -> str:
    """The worker's first line of output ('' if it ended first); at most 120 s."""
    found: list[str] = []
    reader = threading.Thread(
        target=lambda: found.append(worker.stdout.readline() if worker.stdout else ""),
        daemon=True,
    )
    reader.start()
    reader.join(timeout=120)
    return found[0] if found else ""


# -- the thread ----------------------------------------------------------------------------


class CountingClock(Clock):
    """Sets `rounds` once the scheduler has read it `after` times (once per round while the
    database is not ready: the scheduler reads it first thing)."""

    def __init__(self, ms: int, after: int) -> None:
        super().__init__(ms)
        self.reads, self.after = 0, after
        self.rounds = threading.Event()

    def __call__(self) -> float:
        self.reads += 1
        if self.reads >= self.after:
            self.rounds.set()
        return super().__call__()


@pytest.fixture
def bare_engine(empty_db_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_db_url, pool_size=4)
    yield engine
    engine.dispose()


def test_the_thread_waits_out_a_database_not_ready_then_runs_the_jobs(
    bare_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ran = threading.Event()

    def mark(_run: JobRun) -> str:
        ran.set()
        return "ran"

    clock = CountingClock(BASE_MS, after=4)
    node = Scheduler(bare_engine, [Job("tests.mark", HOUR, mark)], owner="here", clock=clock)
    with caplog.at_level(logging.DEBUG, logger="runtime.jobs"):
        thread = SchedulerThread(node, interval_s=0.005).start()
        try:
            assert clock.rounds.wait(120), "the scheduler thread stopped trying"
            migrate(bare_engine)  # the tables come: the thread goes on by itself
            assert ran.wait(120), "the job never ran once the database was ready"
        finally:
            thread.stop()
    assert not thread._thread.is_alive()
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(problems) == 1 and "cannot run" in problems[0].getMessage()
    assert any(
        r.levelno == logging.DEBUG and "still wait" in r.getMessage() for r in caplog.records
    )
    assert any("run again" in r.getMessage() for r in caplog.records)
    with bare_engine.connect() as conn:
        assert [r.summary for r in last_runs(conn)] == ["ran"]


def test_stopping_the_thread_waits_for_the_run_in_progress_and_starts_no_other(
    engine: Engine,
) -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(_run: JobRun) -> str:
        started.set()
        release.wait(120)
        finished.set()
        return "done"

    due_next = Job("tests.b_next", HOUR, lambda _run: "should wait")
    node = scheduler(engine, Job("tests.a_slow", HOUR, slow), due_next)
    thread = SchedulerThread(node).start()
    assert started.wait(120)
    stopper = threading.Thread(target=thread.stop)
    stopper.start()
    release.set()
    stopper.join(120)
    assert finished.is_set() and not stopper.is_alive()
    with engine.connect() as conn:
        # The run in progress was recorded before the thread ended; the next due job waits.
        assert [(r.name, r.summary) for r in last_runs(conn)] == [("tests.a_slow", "done")]


# -- the schema ----------------------------------------------------------------------------

OURS = {"jobs", "job_runs", "event_cursors"}


def test_the_migration_makes_the_tables_of_the_models_and_takes_them_away(
    engine: Engine,
) -> None:
    assert {jobs.name, job_runs.name, event_cursors.name} == OURS
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _ours}
        )
        assert compare_metadata(context, metadata) == []

    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
    assert OURS.isdisjoint(inspect(engine).get_table_names())
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= OURS


def _ours(obj: Any, _name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is not None and table.name in OURS
