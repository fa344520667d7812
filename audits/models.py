"""The table of the treasurer's audit runs (made by migration 0016).

One row per run of the audit: who or what started it, whether it resumed from a previous
run's state or checked everything, how far it got, and what it found. A clean run keeps the
state the next one may resume from, signed by the node key: a resumed audit then takes only
its own signature's word for what was already checked, never the database's.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from ledger.models import Id, metadata

RUNNING, OK, FINDINGS, FAILED = "running", "ok", "findings", "failed"
STATUSES = (RUNNING, OK, FINDINGS, FAILED)

audit_runs = Table(
    "audit_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("started_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger),
    # Written with the progress, about once a second while the run lives: a run whose
    # heartbeat stopped (its process was killed) is taken over by the next start.
    Column("heartbeat_ms", BigInteger, nullable=False),
    Column("started_by", String(160), nullable=False),  # member:<id>, job:<name>, cli
    Column("asked_full", Boolean, nullable=False),
    Column("full", Boolean),  # what the run did: known once it has chosen
    Column("why_full", String(300)),  # why a run asked to resume checked everything
    Column("status", String(16), nullable=False),
    Column("done", BigInteger, nullable=False, server_default=text("0")),
    Column("total", BigInteger),
    Column("transfers", BigInteger),
    Column("errors", Integer),
    Column("warnings", Integer),
    Column("emergencies", Integer),
    Column("report", Text),  # Report.as_dict() as JSON
    Column("state", Text),  # AuditState.to_json() of a clean run
    Column("state_signature", LargeBinary(64)),  # by the node key, over its canonical bytes
    Column("error", Text),  # why a failed run could not finish
    CheckConstraint(f"status IN {STATUSES}", name="audit_run_status"),
    CheckConstraint("(status = 'running') = (finished_ms IS NULL)", name="audit_run_finished"),
    CheckConstraint("(state IS NULL) = (state_signature IS NULL)", name="audit_state_signed"),
    CheckConstraint("state IS NULL OR status = 'ok'", name="audit_state_clean"),
    CheckConstraint("done >= 0", name="audit_run_done"),
    # At most one run at a time, whatever the processes and machines sharing the database.
    Index(
        "one_running_audit",
        "status",
        unique=True,
        sqlite_where=text("status = 'running'"),
        postgresql_where=text("status = 'running'"),
    ),
    Index("ix_audit_runs_status", "status", "id"),
)
