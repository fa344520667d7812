"""The treasurer's audit runs: recording each run of the audit, resuming from the last clean
one, running one in the background for the page, and on a schedule.

A run is a row of `audit_runs` (audits/models.py). At most one runs at a time: the database
refuses a second running row (a partial unique index), so two starts at once make one run.
A running run writes its progress and a heartbeat about once a second; one whose heartbeat
stopped for `stale_after_s` (its process was killed) is marked failed and taken over by the
next start.

A clean run (no finding but warnings) keeps the `AuditState` it leaves, signed by the node
key over the canonical bytes of its JSON. The next run resumes from it only if that
signature verifies with the node's key: a state altered in the database is not used, the
run checks everything and records why.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import nacl.exceptions
import nacl.signing
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, Engine, RowMapping

from audits import errors
from audits import repository as repo
from audits.audit import EscrowRecords, audit, escrow_records_of
from audits.models import FAILED, FINDINGS, OK
from audits.report import EMERGENCY, WARNING, AuditState, Report, Watch, finding_template
from ledger.canonical import canonical
from ledger.signing import SigningKey
from runtime import witness
from runtime.jobs import JobRun
from runtime.node import Node
from web.refusals import Refusal

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
BEAT_S = 1.0  # how often a running run writes its progress and heartbeat
JOB = "audit.scheduled"
CLI = "cli"
ERROR_CHARS = 500


class AuditSettings(BaseSettings):
    """The audit runs' settings, read from SOU_AUDIT_<NAME> (the `audit` plugin's)."""

    model_config = SettingsConfigDict(env_prefix="SOU_AUDIT_", extra="ignore")

    every_s: int = Field(
        3600, ge=60, description="How often the scheduled audit checks what is new, in seconds."
    )
    full_hour: int = Field(
        3, ge=0, le=23, description="The hour of the night (node's time zone) of the full audit."
    )
    stale_after_s: int = Field(
        120,
        ge=10,
        description="A running audit silent this long (its process died) is taken over.",
    )
    workers: int = Field(
        1, ge=1, le=64, description="Processes checking transfers in the node's own audits."
    )
    lease_s: int = Field(
        6 * 3600, ge=60, description="The longest a scheduled audit may take, in seconds."
    )


DEFAULTS = AuditSettings()


@dataclass(frozen=True)
class AuditRun:
    """A run of the audit, as the pages (this one, the transparency page, the treasurer's
    dashboard) show it."""

    id: int
    started_ms: int
    finished_ms: int | None
    ok: bool  # finished without a finding but warnings
    findings: int  # how many, of every severity
    full: bool | None  # None while a running run has not chosen yet
    status: str  # running, ok, findings, failed
    watch: Watch | None  # the figures it measured, once finished
    started_by: str = CLI
    asked_full: bool = False
    why_full: str | None = None
    done: int = 0
    total: int | None = None
    transfers: int | None = None
    errors: int = 0
    warnings: int = 0
    emergencies: int = 0
    error: str | None = None  # why a failed run could not finish

    @property
    def seconds(self) -> float | None:
        if self.finished_ms is None:
            return None
        return (self.finished_ms - self.started_ms) / 1000


def now_ms() -> int:
    return int(time.time() * 1000)


def settings_of(node: Node) -> AuditSettings:
    found = node.plugin_settings("audit")
    return found if isinstance(found, AuditSettings) else DEFAULTS


# -- reading runs ----------------------------------------------------------------------------


def latest_run(conn: Connection, *, clean: bool = False) -> AuditRun | None:
    """The latest run that finished with an outcome (everything holds, or findings); with
    `clean`, the latest in which everything held. Runs still going or that failed to finish
    are not audits of the ledger."""
    row = repo.latest(conn, (OK,) if clean else (OK, FINDINGS))
    return None if row is None else _run_of(row)


def runs(conn: Connection, limit: int = 20, before_id: int | None = None) -> list[AuditRun]:
    """The latest runs first, whatever their status."""
    return [_run_of(row) for row in repo.runs(conn, limit, before_id)]


def running_run(conn: Connection, stale_after_s: float = DEFAULTS.stale_after_s) -> AuditRun | None:
    """The run going on now, if its process is alive (its heartbeat is recent): one whose
    process died is not shown as going on, and the next start takes it over."""
    row = repo.running(conn, now_ms() - int(stale_after_s * 1000))
    return None if row is None else _run_of(row)


def run_of(conn: Connection, run_id: int) -> tuple[AuditRun, dict[str, Any] | None]:
    """One run and its report (None until it finishes); UNKNOWN_RUN if there is none."""
    row = repo.run(conn, run_id)
    if row is None:
        raise errors.UNKNOWN_RUN()
    return _run_of(row), _report_of(row)


def _report_of(row: RowMapping) -> dict[str, Any] | None:
    text = row.get("report")
    if not text:
        return None
    report = json.loads(text)
    return report if isinstance(report, dict) else None


def _watch_of(report: dict[str, Any] | None) -> Watch | None:
    figures = (report or {}).get("watch")
    if not isinstance(figures, dict):
        return None
    known = Watch.__dataclass_fields__
    return Watch(**{k: v for k, v in figures.items() if k in known})


def _run_of(row: RowMapping) -> AuditRun:
    counts = [int(row[name] or 0) for name in ("errors", "warnings", "emergencies")]
    return AuditRun(
        id=int(row["id"]),
        started_ms=int(row["started_ms"]),
        finished_ms=row["finished_ms"],
        ok=row["status"] == OK,
        findings=sum(counts),
        full=row["full"],
        status=str(row["status"]),
        watch=_watch_of(_report_of(row)) if "report" in row else None,
        started_by=str(row["started_by"]),
        asked_full=bool(row["asked_full"]),
        why_full=row["why_full"],
        done=int(row["done"]),
        total=row["total"],
        transfers=row["transfers"],
        errors=counts[0],
        warnings=counts[1],
        emergencies=counts[2],
        error=row["error"],
    )


# -- the signed state ------------------------------------------------------------------------


def state_bytes(state_json: str) -> bytes:
    """What the node key signs: the RFC 8785 canonical bytes of the state's JSON."""
    return canonical(json.loads(state_json))


def sign_state(node_key: SigningKey, state: AuditState) -> tuple[str, bytes]:
    text = state.to_json()
    return text, node_key.sign_bytes(state_bytes(text))


# Why a run asked to resume checked everything (msgids of audit.po: the page says them in
# its reader's language; `{run}` names the run whose state could not be used).
NOTHING_TO_RESUME = finding_template(
    "no earlier audit found everything in order: there is nothing to resume"
)
STATE_UNSIGNED = finding_template(
    "the state left by run {run} does not carry the node's signature (altered in the "
    "database?): everything was checked anew"
)
STATE_UNREADABLE = finding_template(
    "the state left by run {run} cannot be read: everything was checked"
)
WHY_FULL = (NOTHING_TO_RESUME, STATE_UNSIGNED, STATE_UNREADABLE)


def resume_plan(conn: Connection, node_public_key: bytes) -> tuple[AuditState | None, str]:
    """The last clean run's state if its signature verifies with the node key, else None
    and why (which the run records)."""
    row = repo.latest_clean(conn)
    if row is None or row["state"] is None:
        return None, NOTHING_TO_RESUME
    text, signature = str(row["state"]), bytes(row["state_signature"])
    try:
        nacl.signing.VerifyKey(node_public_key).verify(state_bytes(text), signature)
    except (ValueError, nacl.exceptions.BadSignatureError):
        return None, STATE_UNSIGNED.format(run=row["id"])
    try:
        return AuditState.from_json(text), ""
    except (TypeError, ValueError):
        return None, STATE_UNREADABLE.format(run=row["id"])


def resume_state(conn: Connection, node_public_key: bytes) -> AuditState | None:
    """The last clean run's state, if its signature verifies with the node key."""
    return resume_plan(conn, node_public_key)[0]


# -- running an audit ------------------------------------------------------------------------


def begin(
    engine: Engine,
    *,
    by: str,
    full: bool,
    stale_after_s: float = DEFAULTS.stale_after_s,
    clock: Callable[[], float] = time.time,
) -> int:
    """Record a new running run and give its id. A run whose heartbeat stopped is taken over
    (marked failed); one still alive refuses the start: AUDIT_RUNNING, naming it."""
    now = int(clock() * 1000)
    with engine.begin() as conn:
        taken_over = repo.abandon_stale(conn, now, now - int(stale_after_s * 1000))
        if taken_over is not None:
            log.warning("audit run %s stopped without finishing: taken over", taken_over)
        try:
            return repo.insert_running(conn, now, by[:160], full)
        except repo.AlreadyRunning:
            other = repo.running(conn)
            raise errors.AUDIT_RUNNING(run=other["id"] if other else "?") from None


class _Heartbeat:
    """Writes a run's progress about once a second, from a thread of its own, so that the
    heartbeat goes on while the audit checks what has no progress to tell (the log)."""

    def __init__(self, engine: Engine, run_id: int, clock: Callable[[], float]) -> None:
        self.engine, self.run_id, self.clock = engine, run_id, clock
        self.done: int = 0
        self.total: int | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"audit-run-{run_id}", daemon=True)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _beat(self) -> None:
        while not self.stopped.wait(BEAT_S):
            try:
                with self.engine.begin() as conn:
                    repo.beat(conn, self.run_id, int(self.clock() * 1000), self.done, self.total)
            except Exception:  # a busy database: the next beat will do
                log.exception("could not record audit run %s's progress", self.run_id)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join()


def carry_out(
    engine: Engine,
    node_key: SigningKey,
    run_id: int,
    *,
    full: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    witnessed: Sequence[str] = (),
    clock: Callable[[], float] = time.time,
    reading: Engine | None = None,
    escrow_records: EscrowRecords | None = None,
) -> Report:
    """Audit the ledger as run `run_id` (begun with `begin`) and record its outcome: what it
    found, and for a clean run the state it leaves, signed. A run that cannot finish is
    recorded failed, with why, and the exception goes on. The audit reads through `reading`
    (a read-only engine, say) if given, else through `engine`, which records the run."""
    try:
        with engine.connect() as conn:
            since, why = (None, "") if full else resume_plan(conn, node_key.public_key)
        with engine.begin() as conn:
            repo.set_plan(conn, run_id, since is None, why or None)
        with _Heartbeat(engine, run_id, clock) as heart:

            def told(done: int, total: int) -> None:
                heart.progress(done, total)
                if progress is not None:
                    progress(done, total)

            report = audit(
                reading or engine,
                node_public_key=node_key.public_key,
                witnessed=witnessed,
                workers=workers,
                progress=told,
                since=since,
                escrow_records=escrow_records,
            )
        _record(engine, node_key, run_id, report, why, clock)
    except Exception as exc:
        _record_failure(engine, run_id, exc, clock)
        raise
    return report


def _record(
    engine: Engine,
    node_key: SigningKey,
    run_id: int,
    report: Report,
    why: str,
    clock: Callable[[], float],
) -> None:
    severities = [f.severity for f in report.findings]
    state, signature = (None, None)
    if report.ok and report.state is not None:
        state, signature = sign_state(node_key, report.state)
    with engine.begin() as conn:
        kept = repo.finish(
            conn,
            run_id,
            int(clock() * 1000),
            status=OK if report.ok else FINDINGS,
            full=report.full,
            why_full=(why or None) if report.full else None,
            done=report.transfers,
            total=report.transfers,
            transfers=report.transfers,
            errors=len(severities) - severities.count(WARNING) - severities.count(EMERGENCY),
            warnings=severities.count(WARNING),
            emergencies=severities.count(EMERGENCY),
            report=json.dumps(report.as_dict(), ensure_ascii=False),
            state=state,
            state_signature=signature,
        )
    if not kept:
        log.warning("audit run %s was taken over before it finished: its outcome is lost", run_id)


def _record_failure(
    engine: Engine, run_id: int, exc: BaseException, clock: Callable[[], float]
) -> None:
    said = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    try:
        with engine.begin() as conn:
            repo.finish(conn, run_id, int(clock() * 1000), status=FAILED, error=said[:ERROR_CHARS])
    except Exception:  # the database itself is gone: the run will be taken over
        log.exception("could not record that audit run %s failed", run_id)


def run_audit(
    engine: Engine,
    node_key: SigningKey,
    *,
    full: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    witnessed: Sequence[str] = (),
    by: str = CLI,
    stale_after_s: float = DEFAULTS.stale_after_s,
    clock: Callable[[], float] = time.time,
    reading: Engine | None = None,
    escrow_records: EscrowRecords | None = None,
) -> tuple[Report, int]:
    """Run the audit and record it: resumed from the last clean run's signed state unless
    `full` or there is none valid. Refuses (AUDIT_RUNNING, a Refusal) while another runs.
    `engine` must be able to write (`audit_runs`); the audit itself only reads, through
    `reading` if given (the command line's read-only engine)."""
    run_id = begin(engine, by=by, full=full, stale_after_s=stale_after_s, clock=clock)
    report = carry_out(
        engine,
        node_key,
        run_id,
        full=full,
        workers=workers,
        progress=progress,
        witnessed=witnessed,
        clock=clock,
        reading=reading,
        escrow_records=escrow_records,
    )
    return report, run_id


# -- in the node: in the background, and on schedule -----------------------------------------


def start_in_background(node: Node, by: str, *, full: bool) -> int:
    """Begin a run and carry it out in a thread of the node's process: the page follows its
    progress. The id of the run; AUDIT_RUNNING if one is already running."""
    settings = settings_of(node)
    run_id = begin(node.engine, by=by, full=full, stale_after_s=settings.stale_after_s)

    def carry() -> None:
        try:
            carry_out(
                node.engine,
                node.node_key,
                run_id,
                full=full,
                workers=settings.workers,
                witnessed=witness.witnessed(node.settings.data_dir),
                escrow_records=escrow_records_of(node.plugins),
            )
        except Exception:  # recorded as failed with why; the page says so
            log.exception("audit run %s failed", run_id)

    threading.Thread(target=carry, name=f"audit-{run_id}", daemon=True).start()
    return run_id


def scheduled_kind(
    started_ms: int, last_full_ms: int | None, full_hour: int, zone: str, resumable: bool
) -> str | None:
    """What the scheduled run does: "full" in the night's hour when the last full run is
    more than 20 hours old (or there is none), and whenever it is more than 36 hours old
    (the node was down that night); else "resumed" from the last clean run's state; None
    (nothing) by day when there is no valid state to resume from: a full audit of a large
    ledger waits for the night."""
    hour = datetime.fromtimestamp(started_ms / 1000, UTC).astimezone(ZoneInfo(zone)).hour
    age_h = None if last_full_ms is None else (started_ms - last_full_ms) / 3_600_000
    if hour == full_hour and (age_h is None or age_h > 20):
        return "full"
    if not resumable:
        return None
    return "full" if age_h is None or age_h > 36 else "resumed"


def scheduled(node: Node, run: JobRun) -> str:
    """The scheduled job: what is new every hour, everything once a night."""
    settings = settings_of(node)
    with node.engine.connect() as conn:
        resumable = resume_state(conn, node.node_key.public_key) is not None
        last_full = repo.latest_full_started_ms(conn)
    kind = scheduled_kind(
        run.started_ms, last_full, settings.full_hour, node.settings.timezone, resumable
    )
    if kind is None:
        return "nothing to resume from: the full audit waits for the night"
    try:
        report, run_id = run_audit(
            node.engine,
            node.node_key,
            full=kind == "full",
            workers=settings.workers,
            witnessed=witness.witnessed(node.settings.data_dir),
            by=f"job:{run.name}",
            stale_after_s=settings.stale_after_s,
            clock=run.clock,
            escrow_records=escrow_records_of(node.plugins),
        )
    except Refusal as refusal:
        return f"not run: {refusal.message.format(**refusal.params)}"[:ERROR_CHARS]
    kind = "full" if report.full else "resumed"
    said = "everything holds" if report.ok else f"{len(report.findings)} findings"
    return f"run {run_id} ({kind}): {report.transfers} transfers checked, {said}"
