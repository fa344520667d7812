"""The demo village of `sou init --demo` as someone trying Sou meets it: a few weeks of
life, every transfer in the past and in the order posted, and a ledger the audit passes
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from audits.reports import service as reports
from node.cli import app as cli
from node.demo import LISTED
from runtime.database import make_engine
from runtime.node import open_node
from runtime.settings import Settings

runner = CliRunner()
WEEK_MS = 7 * 86_400_000
# Every entry of the Merkle log (transfers and key events), in log order: when it was made.
LOG_IN_ORDER = """
SELECT COALESCE(t.created_ms, k.created_ms) FROM log_leaves l
LEFT JOIN transfers t ON t.id = l.transfer_id
LEFT JOIN key_events k ON k.id = l.key_event_id
ORDER BY l.idx
"""
# Each transfer's kind and time, and when the key that signed it was registered.
SIGNED_BY = """
SELECT t.kind, t.created_ms, k.registered_ms FROM transfers t JOIN keys k ON k.key_id = t.key_id
"""


def test_the_demo_tells_weeks_of_life_that_the_audit_passes(
    tmp_path: Path, empty_db_url: str
) -> None:
    env = {"SOU_DATA_DIR": str(tmp_path / "data"), "SOU_DATABASE_URL": empty_db_url}
    made = runner.invoke(cli, ["init", "--demo"], env=env)
    assert made.exit_code == 0, made.output
    engine = make_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            stamps = list(
                conn.execute(text("SELECT created_ms FROM transfers ORDER BY id")).scalars()
            )
            joined = set(conn.execute(text("SELECT created_ms FROM members")).scalars())
            logged = list(conn.execute(text(LOG_IN_ORDER)).scalars())
            signed = conn.execute(text(SIGNED_BY)).all()
            key_events = conn.execute(text("SELECT count(*) FROM key_events")).scalar_one()
    finally:
        engine.dispose()
    assert len(stamps) >= 20
    assert stamps[-1] - stamps[0] >= 3 * WEEK_MS  # the README's "few weeks"
    assert stamps == sorted(stamps)  # told in the order posted
    assert len(set(stamps)) == len(stamps)
    assert stamps[-1] < time.time() * 1000  # nothing in the future
    assert max(joined) <= stamps[0]  # the village's people joined before they paid
    # The node's, treasurer's and office's keys too are registered on the story's first
    # morning: the log reads in time order, and no transfer is older than its key.
    assert len(logged) == len(stamps) + key_events  # the node's, plugins', members' keys
    assert logged == sorted(logged) and logged[0] < stamps[0]
    assert len(signed) == len(stamps)
    assert [(kind, when) for kind, when, registered in signed if registered > when] == []
    audited = runner.invoke(cli, ["audit", "--json"], env=env)
    assert audited.exit_code == 0, audited.output
    report = json.loads(audited.output)
    # Nothing to say, not even a warning: the fee rule of the reconversion it tells is there.
    assert report["ok"] and report["findings"] == [], report["findings"]
    # The treasurer's dashboard names the most active shops that agreed to it, and no other.
    node = open_node(Settings(data_dir=tmp_path / "data", database_url=empty_db_url))
    try:
        figures = reports.report(node, reports.read_period(None, None, date.today()))
    finally:
        node.close()
    assert {m.member_id for m in figures.merchants} == set(LISTED)
