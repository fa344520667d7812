"""Scheduled jobs, their runs, and the cursors of reactions to ledger events.

A job runs once across every process and machine of the node: a process takes it by
writing a lease into its row, if the job is due and nobody's lease is running. Each run is
recorded. A reaction's cursor is the number of log leaves it has been given.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("name", sa.String(96), primary_key=True),
        sa.Column("every_ms", sa.BigInteger, nullable=False),
        sa.Column("next_due_ms", sa.BigInteger, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until_ms", sa.BigInteger),
        sa.CheckConstraint("every_ms > 0", name="every"),
        sa.CheckConstraint("(lease_owner IS NULL) = (lease_until_ms IS NULL)", name="lease"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(96), sa.ForeignKey("jobs.name"), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("due_ms", sa.BigInteger, nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_ms", sa.BigInteger, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("error", sa.Text),
        sa.CheckConstraint("ok OR error IS NOT NULL", name="error_said"),
    )
    op.create_index("ix_job_runs_name", "job_runs", ["name", "id"])
    op.create_table(
        "event_cursors",
        sa.Column("name", sa.String(96), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.CheckConstraint("position >= 0", name="position"),
    )


def downgrade() -> None:
    op.drop_table("event_cursors")
    op.drop_index("ix_job_runs_name", "job_runs")
    op.drop_table("job_runs")
    op.drop_table("jobs")
