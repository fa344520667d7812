"""`sou audit` asks each plugin what its records say its escrows hold (`sou_escrow_holdings`)
and names the escrow where the ledger's balance differs: on the demo village, whose farm
and campaigns hold members' units, an AMAP payment or a crowdfunding refund recorded
otherwise than posted is found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from node.cli import app as cli
from runtime.database import make_engine

runner = CliRunner()


@pytest.fixture
def demo(tmp_path: Path, empty_db_url: str) -> dict[str, str]:
    env = {"SOU_DATA_DIR": str(tmp_path / "data"), "SOU_DATABASE_URL": empty_db_url}
    made = runner.invoke(cli, ["init", "--demo"], env=env)
    assert made.exit_code == 0, made.output
    return env


def _audit(env: dict[str, str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    done = runner.invoke(cli, ["audit", "--json"], env=env)
    return done.exit_code, json.loads(done.output)


def _change(env: dict[str, str], sql: str) -> str:
    engine = make_engine(env["SOU_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            return str(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_an_escrow_that_holds_other_than_its_plugin_records_say_is_named(
    demo: dict[str, str],
) -> None:
    code, report = _audit(demo)
    assert code == 0 and report["ok"], report["findings"]
    subscription = _change(
        demo,
        "UPDATE amap_payments SET amount = amount + 100 WHERE transfer_id = "
        "(SELECT min(transfer_id) FROM amap_payments) RETURNING subscription",
    )
    code, report = _audit(demo)
    assert code == 1
    escrows = [f for f in report["findings"] if f["check"] == "escrow"]
    assert [f["account"] for f in escrows] == [f"escrow:amap:sub-{subscription}"]
    assert "records of plugin amap" in escrows[0]["message"]


def test_a_campaign_escrow_whose_payments_are_recorded_otherwise_is_named(
    demo: dict[str, str],
) -> None:
    escrow = _change(
        demo,
        "DELETE FROM crowdfunding_payments WHERE transfer_id = "
        "(SELECT max(transfer_id) FROM crowdfunding_payments) RETURNING escrow",
    )
    code, report = _audit(demo)
    assert code == 1
    assert [f["account"] for f in report["findings"] if f["check"] == "escrow"] == [escrow]


def test_sou_audit_resumes_from_the_last_clean_run_unless_asked_for_a_full_one(
    demo: dict[str, str],
) -> None:
    code, first = _audit(demo)
    assert code == 0 and first["full"]
    code, second = _audit(demo)
    assert code == 0 and not second["full"] and second["resumed_from"] is not None
    assert second["transfers"] == 0  # nothing new since the first
    done = runner.invoke(cli, ["audit", "--full", "--json"], env=demo)
    assert done.exit_code == 0 and json.loads(done.output)["full"]
    assert json.loads(done.output)["transfers"] == first["transfers"]
    said = runner.invoke(cli, ["audit"], env=demo)
    assert (
        said.exit_code == 0 and "after transfer" in said.output and "All checks hold" in said.output
    )
