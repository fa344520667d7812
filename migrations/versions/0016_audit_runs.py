"""The treasurer's audit runs (`audit_runs`, see audits/models.py): one row per run, at most
one running (a partial unique index), the report as JSON, and for a clean run the state the
next audit may resume from, signed by the node key.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_table(
        "audit_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_ms", sa.BigInteger),
        sa.Column("heartbeat_ms", sa.BigInteger, nullable=False),
        sa.Column("started_by", sa.String(160), nullable=False),
        sa.Column("asked_full", sa.Boolean, nullable=False),
        sa.Column("full", sa.Boolean),
        sa.Column("why_full", sa.String(300)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("total", sa.BigInteger),
        sa.Column("transfers", sa.BigInteger),
        sa.Column("errors", sa.Integer),
        sa.Column("warnings", sa.Integer),
        sa.Column("emergencies", sa.Integer),
        sa.Column("report", sa.Text),
        sa.Column("state", sa.Text),
        sa.Column("state_signature", sa.LargeBinary(64)),
        sa.Column("error", sa.Text),
        sa.CheckConstraint(
            "status IN ('running', 'ok', 'findings', 'failed')", name="audit_run_status"
        ),
        sa.CheckConstraint(
            "(status = 'running') = (finished_ms IS NULL)", name="audit_run_finished"
        ),
        sa.CheckConstraint(
            "(state IS NULL) = (state_signature IS NULL)", name="audit_state_signed"
        ),
        sa.CheckConstraint("state IS NULL OR status = 'ok'", name="audit_state_clean"),
        sa.CheckConstraint("done >= 0", name="audit_run_done"),
    )
    op.create_index(
        "one_running_audit",
        "audit_runs",
        ["status"],
        unique=True,
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )
    op.create_index("ix_audit_runs_status", "audit_runs", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_runs_status", "audit_runs")
    op.drop_index("one_running_audit", "audit_runs")
    op.drop_table("audit_runs")
