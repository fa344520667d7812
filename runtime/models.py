"""Tables of the node's background work: scheduled jobs with their leases and past runs, and
how far each reaction has been given the ledger's events. Made by migration 0009.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
)

from ledger.models import Id, metadata

# One row per job: when it is next due, and who holds it while it runs. A lease is a
# time, not a lock: a process killed mid-run holds the job until its lease runs out.
jobs = Table(
    "jobs",
    metadata,
    Column("name", String(96), primary_key=True),
    Column("every_ms", BigInteger, nullable=False),
    Column("next_due_ms", BigInteger, nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_until_ms", BigInteger),
    CheckConstraint("every_ms > 0", name="every"),
    CheckConstraint("(lease_owner IS NULL) = (lease_until_ms IS NULL)", name="lease"),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(96), ForeignKey("jobs.name"), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("due_ms", BigInteger, nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("summary", Text),
    Column("error", Text),  # the exception's type and first line, never its traceback
    CheckConstraint("ok OR error IS NOT NULL", name="error_said"),
    Index("ix_job_runs_name", "name", "id"),
)

# Position = how many leaves of the Merkle log the reaction has been given.
event_cursors = Table(
    "event_cursors",
    metadata,
    Column("name", String(96), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    CheckConstraint("position >= 0", name="position"),
)

# SQLite's way of waking the other web processes (runtime/notices.py); made by 0011.
notices = Table(
    "notices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message", String(200), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)
