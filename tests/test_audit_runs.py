"""The treasurer's audit runs: each run recorded with its outcome, one at a time, a run left
by a dead process taken over, a resumed run trusting only a state the node signed, the
scheduled job, and the page and API with their refusals."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from html import unescape
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from audits import service
from audits.models import audit_runs
from audits.report import AuditState
from runtime.jobs import JobRun
from tests.people import fund, join, operator
from tests.test_audit import _tamper
from web.refusals import Refusal

WAIT_S = 60  # how long a background run may take on a slow machine


@pytest.fixture
def site(site: Any, node: Any) -> Any:
    """The conftest's site, without the scheduler: its audit job (at night, a full audit when
    the node starts) would take the one running place these tests count on."""
    node.scheduler.stop()
    with node.engine.begin() as conn:
        conn.execute(audit_runs.delete())
    return site


def _rows(node: Any) -> list[Any]:
    with node.engine.connect() as conn:
        return list(conn.execute(select(audit_runs).order_by(audit_runs.c.id)).mappings())


def _paid(site: Any, n: int = 2) -> None:
    """Some movements to check: residents funded by the office, one paying another."""
    for i in range(n):
        fund(site, join(site, f"Habitant {i}"), 1_000 + i)


def _wait_finished(node: Any, run_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with node.engine.connect() as conn:
            row = conn.execute(select(audit_runs).where(audit_runs.c.id == run_id)).mappings()
            found = dict(row.one())
        if found["status"] != "running":
            return found
        time.sleep(0.1)
    raise AssertionError(f"audit run {run_id} still running after {WAIT_S} s")


# -- runs and their outcome ------------------------------------------------------------------


def test_a_clean_run_is_recorded_and_the_next_resumes_from_its_signed_state(
    site: Any, node: Any
) -> None:
    _paid(site)
    first, first_id = service.run_audit(node.engine, node.node_key, by="cli", workers=1)
    assert first.ok and first.full, first.findings
    row = _rows(node)[-1]
    assert row["id"] == first_id and row["status"] == "ok" and row["full"]
    assert row["started_by"] == "cli" and row["finished_ms"] >= row["started_ms"]
    assert row["transfers"] == first.transfers and row["errors"] == 0
    assert json.loads(row["report"])["ok"] is True
    # The state it leaves is signed by the node key, over its canonical bytes.
    assert row["state"] == AuditState.from_json(row["state"]).to_json()
    with node.engine.connect() as conn:
        state = service.resume_state(conn, node.node_key.public_key)
    assert state is not None and state.last_transfer == first.state.last_transfer  # type: ignore[union-attr]

    _paid(site, 1)  # something new to check
    second, second_id = service.run_audit(node.engine, node.node_key, by="cli", workers=1)
    assert second.ok and not second.full
    assert second.resumed_from == state.last_transfer
    with node.engine.connect() as conn:
        latest = service.latest_run(conn, clean=True)
    assert latest is not None and latest.id == second_id and latest.ok and latest.full is False
    assert latest.findings == 0 and latest.watch is not None
    assert latest.watch.outstanding == second.watch.outstanding


def test_the_command_line_audits_through_a_read_only_engine_and_records_the_run(
    site: Any, node: Any
) -> None:
    from runtime.database import make_engine, read_only

    _paid(site, 1)
    reading = read_only(make_engine(node.settings.resolved_database_url, pool_size=2))
    try:
        report, run_id = service.run_audit(
            node.engine, node.node_key, workers=1, by="cli", reading=reading
        )
    finally:
        reading.dispose()
    assert report.ok and _rows(node)[-1]["id"] == run_id
    assert _rows(node)[-1]["status"] == "ok" and _rows(node)[-1]["started_by"] == "cli"


def test_a_run_with_findings_keeps_no_state_and_the_next_checks_everything(
    site: Any, node: Any
) -> None:
    _paid(site)
    service.run_audit(node.engine, node.node_key, workers=1)
    with node.engine.connect() as conn:
        newest = conn.execute(text("SELECT max(transfer_id) FROM postings")).scalar_one()
    _tamper(node.engine, newest)
    report, run_id = service.run_audit(node.engine, node.node_key, workers=1, full=True)
    assert not report.ok
    row = _rows(node)[-1]
    assert row["id"] == run_id and row["status"] == "findings" and row["state"] is None
    assert row["errors"] + row["emergencies"] == sum(1 for f in report.findings) - row["warnings"]
    with node.engine.connect() as conn:
        assert service.latest_run(conn).id == run_id  # type: ignore[union-attr]
        assert service.latest_run(conn, clean=True).id != run_id  # type: ignore[union-attr]


def test_a_run_that_cannot_finish_is_recorded_failed_with_why(
    site: Any, node: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the disk is gone\nand more")

    monkeypatch.setattr(service, "audit", broken)
    with pytest.raises(RuntimeError):
        service.run_audit(node.engine, node.node_key)
    row = _rows(node)[-1]
    assert row["status"] == "failed" and row["error"] == "RuntimeError: the disk is gone"
    with node.engine.connect() as conn:
        assert service.latest_run(conn) is None  # no audit of the ledger finished
    # The place is free again.
    monkeypatch.undo()
    assert service.run_audit(node.engine, node.node_key, workers=1)[0].ok


# -- one at a time ---------------------------------------------------------------------------


def test_two_starts_at_once_make_one_run(node: Any) -> None:
    gate = threading.Barrier(4)
    started: list[int] = []
    refused: list[Refusal] = []

    def start() -> None:
        gate.wait()
        try:
            started.append(service.begin(node.engine, by="cli", full=False))
        except Refusal as refusal:
            refused.append(refusal)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 1 and len(refused) == 3
    assert {r.code for r in refused} == {"audit_running"}
    assert all(r.status == 409 and r.params["run"] == started[0] for r in refused)
    assert [row["id"] for row in _rows(node)] == started


def test_the_database_holds_one_running_run_whatever_python_does(node: Any) -> None:
    values = {"heartbeat_ms": 1, "started_by": "cli", "asked_full": False, "status": "running"}
    with node.engine.begin() as conn:
        conn.execute(audit_runs.insert().values(started_ms=1, **values))
    with pytest.raises(IntegrityError), node.engine.begin() as conn:
        conn.execute(audit_runs.insert().values(started_ms=2, **values))
    assert len(_rows(node)) == 1


def test_a_run_left_by_a_dead_process_is_taken_over(site: Any, node: Any) -> None:
    _paid(site, 1)
    ten_minutes_ago = time.time() - 600
    dead = service.begin(node.engine, by="cli", full=False, clock=lambda: ten_minutes_ago)
    # One still beating is not taken over...
    with pytest.raises(Refusal) as refused:
        service.begin(node.engine, by="cli", full=False, stale_after_s=3600)
    assert refused.value.code == "audit_running"
    # ...one silent for longer than `stale_after_s` is.
    report, run_id = service.run_audit(node.engine, node.node_key, workers=1, stale_after_s=60)
    assert report.ok and run_id != dead
    rows = {row["id"]: row for row in _rows(node)}
    assert rows[dead]["status"] == "failed" and "taken over" in rows[dead]["error"]
    assert rows[run_id]["status"] == "ok"


def test_the_page_does_not_show_a_dead_run_as_going_on(site: Any, node: Any) -> None:
    ten_minutes_ago = time.time() - 600
    service.begin(node.engine, by="cli", full=False, clock=lambda: ten_minutes_ago)
    shown = operator(site, "treasurer").get("/treasurer/audit").text
    assert 'id="audit-progress" role="status" aria-live="polite" hidden' in shown
    assert '"running": null' in shown and "disabled" not in shown


# A process that starts an audit run and is killed with SIGKILL mid-way: its audit tells some
# progress, then never ends (as a long audit of a large ledger would not, yet).
DYING_AUDIT = """
import sys, threading
from audits import service
from ledger.signing import SigningKey
from runtime.database import make_engine

def endless(engine, *, progress, **_):
    progress(3, 10)
    print("checking", flush=True)
    threading.Event().wait()

service.audit = endless
engine = make_engine(sys.argv[1], pool_size=2)
service.run_audit(engine, SigningKey(bytes.fromhex(sys.argv[2])), by="cli")
"""


def test_a_run_whose_process_was_killed_mid_way_is_taken_over(site: Any, node: Any) -> None:
    import subprocess
    import sys

    url, seed = node.settings.resolved_database_url, node.node_key.seed.hex()
    dying = subprocess.Popen(
        [sys.executable, "-c", DYING_AUDIT, url, seed], stdout=subprocess.PIPE, text=True
    )
    try:
        assert dying.stdout is not None and dying.stdout.readline() == "checking\n"
        deadline = time.monotonic() + WAIT_S
        while _rows(node)[-1]["done"] != 3:  # its heartbeat wrote its progress
            assert time.monotonic() < deadline, "the run's progress was never written"
            time.sleep(0.1)
        with pytest.raises(Refusal):  # alive: not taken over
            service.begin(node.engine, by="cli", full=False)
    finally:
        dying.kill()
        dying.wait()
    dead = _rows(node)[-1]
    assert dead["status"] == "running"
    deadline = time.monotonic() + WAIT_S
    while True:  # once its heartbeat is `stale_after_s` old, the next start takes it over
        try:
            report, run_id = service.run_audit(
                node.engine, node.node_key, workers=1, stale_after_s=1
            )
            break
        except Refusal:
            assert time.monotonic() < deadline, "the dead run was never taken over"
            time.sleep(0.2)
    assert report.ok
    rows = {row["id"]: row for row in _rows(node)}
    assert rows[dead["id"]]["status"] == "failed" and "taken over" in rows[dead["id"]]["error"]
    assert rows[run_id]["status"] == "ok"


def test_a_run_taken_over_does_not_overwrite_the_outcome_of_its_successor(
    site: Any, node: Any
) -> None:
    ten_minutes_ago = time.time() - 600
    dead = service.begin(node.engine, by="cli", full=False, clock=lambda: ten_minutes_ago)
    service.run_audit(node.engine, node.node_key, workers=1, stale_after_s=60)
    # The dead run's process comes back and tries to record: nothing changes.
    report = service.carry_out(node.engine, node.node_key, dead, workers=1)
    assert report.ok
    assert _rows(node)[0]["status"] == "failed"


# -- the signed state ------------------------------------------------------------------------


def _alter_state(node: Any, how: str) -> None:
    with node.engine.begin() as conn:
        row = conn.execute(
            select(audit_runs.c.id, audit_runs.c.state, audit_runs.c.state_signature)
            .where(audit_runs.c.status == "ok")
            .order_by(audit_runs.c.id.desc())
        ).first()
        assert row is not None
        state, signature = json.loads(row.state), bytes(row.state_signature)
        if how == "json":
            state["last_transfer"] += 1_000  # skip what came after
            values: dict[str, Any] = {"state": json.dumps(state)}
        elif how == "balances":
            state["balances"] = {k: v + 1 for k, v in state["balances"].items()}
            values = {"state": json.dumps(state)}
        elif how == "garbled":
            values = {"state": row.state[:-3]}
        else:
            values = {"state_signature": bytes([signature[0] ^ 1]) + signature[1:]}
        conn.execute(update(audit_runs).where(audit_runs.c.id == row.id).values(**values))


def _why_shown(html: str) -> tuple[str, str]:
    """The page's line on why a run asked to resume checked everything: (its alarm class,
    its words)."""
    found = re.search(r'<p class="flash ?(\w*)" id="why-full">(.*?)</p>', html, re.S)
    assert found is not None, "no why-full line"
    return found[1], " ".join(unescape(found[2]).split())


@pytest.mark.parametrize("how", ["json", "balances", "garbled", "signature"])
def test_a_state_altered_in_the_database_is_not_resumed_from(
    site: Any, node: Any, how: str
) -> None:
    _paid(site, 1)
    altered = service.run_audit(node.engine, node.node_key, workers=1)[1]
    _alter_state(node, how)
    with node.engine.connect() as conn:
        assert service.resume_state(conn, node.node_key.public_key) is None
    report, run_id = service.run_audit(node.engine, node.node_key, workers=1)
    assert report.full and report.ok
    row = _rows(node)[-1]
    assert row["id"] == run_id and row["full"] and not row["asked_full"]
    assert "checked anew" in row["why_full"] or "cannot be read" in row["why_full"]
    # The treasurer reads why, in French, as an alarm naming the run whose state was altered.
    why = _why_shown(operator(site, "treasurer").get("/treasurer/audit").text)
    assert why == (
        "error",
        f"Lancé pour vérifier les nouveautés, il a tout vérifié : l’état laissé par l’audit "
        f"{altered} ne porte pas la signature du nœud (modifié dans la base de données ?) : "
        "tout a été revérifié",
    )
    # Its own state is signed again: the run after it resumes.
    assert not service.run_audit(node.engine, node.node_key, workers=1)[0].full


def test_a_state_signed_by_another_key_is_not_resumed_from(site: Any, node: Any) -> None:
    from ledger.signing import SigningKey

    service.run_audit(node.engine, node.node_key, workers=1)
    with node.engine.connect() as conn:
        assert service.resume_state(conn, SigningKey.generate().public_key) is None
        assert service.resume_state(conn, node.node_key.public_key) is not None


# -- the schedule ----------------------------------------------------------------------------

HOUR_MS = 3_600_000
NIGHT = int(datetime(2026, 12, 3, 2, 30, tzinfo=UTC).timestamp() * 1000)  # 03:30 in Paris
DAY = NIGHT + 10 * HOUR_MS  # 13:30


def test_the_night_run_is_full_and_the_others_resumed() -> None:
    def kind(now: int, last_full: int | None, resumable: bool = True) -> str | None:
        return service.scheduled_kind(now, last_full, 3, "Europe/Paris", resumable)

    assert kind(NIGHT, NIGHT - 24 * HOUR_MS) == "full"
    assert kind(NIGHT, None, resumable=False) == "full"  # the first, at night
    assert kind(NIGHT + HOUR_MS, NIGHT) == "resumed"  # 04:30, just done
    assert kind(NIGHT, NIGHT - 2 * HOUR_MS) == "resumed"  # just done by hand
    assert kind(DAY, NIGHT - 30 * HOUR_MS) == "full"  # the node was down last night
    assert kind(DAY, NIGHT) == "resumed"
    assert kind(DAY, NIGHT, resumable=False) is None  # findings: wait for the night
    assert kind(DAY, None, resumable=False) is None  # a new node: its first night


@given(
    start=st.integers(NIGHT, NIGHT + 30 * 24 * HOUR_MS),
    hours=st.lists(st.integers(1, 3), min_size=1, max_size=200),
)
def test_hourly_runs_are_full_at_least_every_36_hours(start: int, hours: list[int]) -> None:
    """Whatever the hours the scheduler wakes at (every 1 to 3 hours), no full audit comes
    more than 36 hours (and one wait) after the one before, nor less than 20."""
    now, last_full = start, start
    for step in hours:
        now += step * HOUR_MS
        if service.scheduled_kind(now, last_full, 3, "Europe/Paris", True) == "full":
            assert now - last_full > 20 * HOUR_MS
            last_full = now
        assert now - last_full <= 39 * HOUR_MS


def test_the_scheduled_job_runs_an_audit_and_says_what_it_found(site: Any, node: Any) -> None:
    assert service.JOB in [job.name for job in node.jobs()]
    started = int(time.time() * 1000)
    run = JobRun(service.JOB, "test", started, started, started + 60_000, node.engine)
    service.run_audit(node.engine, node.node_key, workers=1)  # by hand: a state to resume from
    said = service.scheduled(node, run)
    assert "everything holds" in said and _rows(node)[-1]["started_by"] == f"job:{service.JOB}"
    service.begin(node.engine, by="cli", full=False)
    assert service.scheduled(node, run).startswith("not run: An audit is already running")


# -- the page and the API --------------------------------------------------------------------


def test_the_treasurer_starts_a_run_from_the_page_and_sees_its_outcome(
    site: Any, node: Any
) -> None:
    _paid(site)
    treasurer = operator(site, "treasurer")
    empty = treasurer.get("/treasurer/audit")
    assert empty.status_code == 200 and "Aucun audit n’est encore terminé" in empty.text
    started = treasurer.post(
        "/treasurer/audit", data={"csrf": treasurer.csrf, "full": "yes"}, follow_redirects=False
    )
    assert started.status_code == 303
    run_id = int(started.headers["location"].split("started=")[1])
    finished = _wait_finished(node, run_id)
    assert finished["status"] == "ok" and finished["started_by"] == f"member:{treasurer.id}"
    shown = treasurer.get("/treasurer/audit")
    assert "Tout est en ordre." in shown.text and "Audit complet" in shown.text
    assert 'id="emergency"' not in shown.text and f'id="run-{run_id}"' in shown.text
    english = treasurer.get("/treasurer/audit?lang=en")
    assert "Everything holds." in english.text and "Full audit: everything was checked." in (
        english.text
    )


FRENCH_COUNTED = {  # singular: plural
    "mouvement": "mouvements",
    "événement de clés": "événements de clés",
    "entrée du journal": "entrées du journal",
    "point de contrôle": "points de contrôle",
    "compte": "comptes",
}


def test_what_a_run_checked_is_counted_in_the_readers_plural(site: Any, node: Any) -> None:
    """French says "0 mouvement" and "1 point de contrôle"; English "0 movements"."""
    _paid(site)
    treasurer = operator(site, "treasurer")
    for full in ("yes", ""):  # then nothing new: no movement checked
        started = treasurer.post(
            "/treasurer/audit", data={"csrf": treasurer.csrf, "full": full}, follow_redirects=False
        )
        _wait_finished(node, int(started.headers["location"].split("started=")[1]))
    french = _checked_shown(treasurer.get("/treasurer/audit").text)
    assert french.startswith("Vérifié\u202f: 0 mouvement, "), french
    counted = [part.split(" ", 1) for part in french.split(": ", 1)[1].rstrip(".").split(", ")]
    for (n, words), (one, many) in zip(counted, FRENCH_COUNTED.items(), strict=True):
        assert words == (one if int(n) <= 1 else many), french
    english = _checked_shown(treasurer.get("/treasurer/audit?lang=en").text)
    assert english.startswith("Checked: 0 movements, "), english


def _checked_shown(html: str) -> str:
    found = re.search(r'<p class="muted" id="checked">(.*?)</p>', html, re.S)
    assert found is not None, "no line of what was checked"
    return unescape(found[1]).strip()


def test_the_api_starts_reads_and_lists_runs(site: Any, node: Any) -> None:
    treasurer = operator(site, "treasurer")
    started = treasurer.post("/api/v1/audit/runs", json={"full": False})
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["status"] == "running" and run["asked_full"] is False
    _wait_finished(node, run["id"])
    read = treasurer.get(f"/api/v1/audit/runs/{run['id']}").json()
    assert read["status"] == "ok" and read["report"]["ok"] is True and read["full"] is True
    assert "nothing to resume" in read["why_full"]
    # A first audit has nothing to resume from: said plainly, in French, not as an alarm.
    assert _why_shown(treasurer.get("/treasurer/audit").text) == (
        "",
        "Lancé pour vérifier les nouveautés, il a tout vérifié : aucun audit précédent n’a "
        "tout trouvé en ordre, il n’y avait donc rien à reprendre",
    )
    assert _why_shown(treasurer.get("/treasurer/audit?lang=en").text) == (
        "",
        "Asked to check what is new, it checked everything: no earlier audit found "
        "everything in order: there is nothing to resume",
    )
    listed = treasurer.get("/api/v1/audit/runs").json()["runs"]
    assert [r["id"] for r in listed] == [run["id"]]
    missing = treasurer.get("/api/v1/audit/runs/987654321")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_audit_run"


def test_a_start_while_a_run_is_running_is_refused_in_plain_words(site: Any, node: Any) -> None:
    treasurer = operator(site, "treasurer")
    running = service.begin(node.engine, by="cli", full=False)
    api = treasurer.post("/api/v1/audit/runs", json={"full": True})
    assert api.status_code == 409 and api.json()["error"] == "audit_running"
    assert api.json()["run"] == running
    form = treasurer.post("/treasurer/audit", data={"csrf": treasurer.csrf})
    assert form.status_code == 409 and "Un audit est déjà en cours" in form.text
    assert len(_rows(node)) == 1


@pytest.mark.parametrize("role", ["resident", "merchant", "office", "admin"])
def test_nobody_but_the_treasurer_sees_or_starts_an_audit(site: Any, node: Any, role: str) -> None:
    person = (
        join(site, "Curieux", role) if role in ("resident", "merchant") else operator(site, role)
    )
    assert person.get("/treasurer/audit").status_code == 403
    assert person.post("/treasurer/audit", data={"csrf": person.csrf}).status_code == 403
    assert person.post("/api/v1/audit/runs", json={}).status_code == 403
    assert person.get("/api/v1/audit/runs").status_code == 403
    with node.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_runs)).scalar_one() == 0


def test_a_visitor_is_sent_to_log_in(site: Any) -> None:
    answer = site.get("/treasurer/audit", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert site.get("/api/v1/audit/runs").status_code == 401


def _finished_run(node: Any, findings: list[dict[str, Any]], **watch: int) -> None:
    """A run as the audit would have recorded it, with these findings and watch figures."""
    figures = {"payments_12_months": 0, "acpr_ceiling": 100_000_000, "backing": 10_000}
    figures |= {"outstanding": 10_000, **watch}
    report = {
        "transfers": 7,
        "key_events": 3,
        "leaves": 10,
        "checkpoints": 2,
        "accounts": 9,
        "findings": findings,
        "full": True,
        "ok": all(f["severity"] == "warning" for f in findings),
        "watch": {**figures, "acpr_share": figures["payments_12_months"] / 100_000_000},
    }
    severities = [f["severity"] for f in findings]
    with node.engine.begin() as conn:
        conn.execute(
            audit_runs.insert().values(
                started_ms=1_000,
                finished_ms=3_500,
                heartbeat_ms=3_500,
                started_by="job:audit.scheduled",
                asked_full=True,
                full=True,
                status="ok" if report["ok"] else "findings",
                done=7,
                total=7,
                transfers=7,
                errors=severities.count("error"),
                warnings=severities.count("warning"),
                emergencies=severities.count("emergency"),
                report=json.dumps(report),
            )
        )


def test_an_emergency_is_shown_first_and_loud(site: Any, node: Any) -> None:
    _finished_run(
        node,
        [
            {"check": "balance", "message": "member:x stored 5, replayed 4", "severity": "error"},
            {
                "check": "backing",
                "message": "on 2026-12-01 the day ended with 900 units but 800 in reserve",
                "severity": "emergency",
            },
        ],
        backing=800,
        outstanding=900,
    )
    shown = operator(site, "treasurer").get("/treasurer/audit").text
    assert shown.index('id="emergency"') < shown.index('id="start"')
    assert 'role="alert"' in shown and "Urgence" in shown and "2026-12-01" in shown
    assert shown.index("Urgences (1)") < shown.index("Erreurs (1)")
    assert "Le solde d’un compte diffère" in shown
    assert "2 constats." in shown


def test_the_acpr_watch_warns_from_80_percent(site: Any, node: Any) -> None:
    warning = "payments over the last 12 months (850000 EUR) have reached 85%"
    _finished_run(
        node,
        [{"check": "acpr", "message": warning, "severity": "warning"}],
        payments_12_months=85_000_000,
    )
    treasurer = operator(site, "treasurer")
    shown = treasurer.get("/treasurer/audit").text
    assert "85\u00a0%" in shown and "Au-delà de 80\u202f%" in shown
    assert "850\u202f000,00 EUR" in shown and "1\u202f000\u202f000,00 EUR" in shown
    assert "Tout est en ordre." in shown  # a warning is no fault
    assert "85%" in treasurer.get("/treasurer/audit?lang=en").text


def _balance_raised(node: Any, code: str) -> None:
    """An account's stored balance raised by one cent behind the ledger's back (its triggers
    off, as an attacker with the database would)."""
    with node.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE accounts SET balance = balance + 1 WHERE code = :c"), {"c": code})


def test_each_finding_is_said_in_the_readers_language(site: Any, node: Any) -> None:
    camille = join(site, "Camille")
    fund(site, camille, 1_250)
    code = camille.account
    _balance_raised(node, code)
    report, _ = service.run_audit(node.engine, node.node_key, workers=1, full=True)
    (found,) = [f for f in report.findings if f.account == code]
    english = f"account {code}: stored balance 1251, history gives 1250"
    assert found.message == english  # the command line and the JSON report say it so
    assert dict(found.args) == {"code": code, "stored": 1251, "replayed": 1250}
    treasurer = operator(site, "treasurer")
    shown = treasurer.get("/treasurer/audit").text
    assert f"compte {code}\u202f: solde enregistré 1251, l’historique donne 1250" in shown
    assert english not in shown
    assert english in treasurer.get("/treasurer/audit?lang=en").text


def test_the_ledgers_reason_in_a_finding_is_said_in_the_readers_language(
    site: Any, node: Any
) -> None:
    """A signed order the ledger would refuse: the finding quotes the ledger's reason, which
    the page says by its code (the English stays in the command line and the JSON report)."""
    order = "transfer {transfer}: the signed order is not valid: {reason}"
    malformed = "amount: must be at most 100"
    refused = "a refund goes from the payee of the original payment back to its payer"
    stored = [
        {
            "check": "order",
            "message": order.format(transfer=17, reason=malformed),
            "severity": "error",
            "template": order,
            "args": {"transfer": 17, "reason": malformed, "reason_code": "invalid_order"}
            | {"reason_field": "amount"},
        },
        {
            "check": "order",
            "message": order.format(transfer=18, reason=refused),
            "severity": "error",
            "template": order,
            "args": {"transfer": 18, "reason": refused, "reason_code": "invalid_reference"},
        },
    ]
    _finished_run(node, stored)
    treasurer = operator(site, "treasurer")
    shown = unescape(treasurer.get("/treasurer/audit").text)
    said = "mouvement {}\u202f: l’ordre signé n’est pas valide ({})"
    assert said.format(17, "le montant doit valoir au plus 100") in shown
    assert said.format(18, "le virement cité ne le permet pas") in shown
    assert malformed not in shown and refused not in shown
    english = unescape(treasurer.get("/treasurer/audit?lang=en").text)
    assert "transfer 17: the signed order is not valid: the amount must be at most 100" in english
    assert "transfer 18: the signed order is not valid: the referenced transfer does not " in (
        english
    )


def test_why_a_checkpoint_is_refused_is_said_in_the_readers_language(site: Any, node: Any) -> None:
    """A checkpoint note that does not hold: the finding quotes the parser's reason, which
    the page says from the reason's own template (the English stays in the JSON report)."""
    stored = [
        _checkpoint_finding(
            "checkpoint {size}: {reason}",
            {"size": 512},
            "checkpoint is not signed by {name}",
            {"name": "sou.example/ledger"},
        ),
        _checkpoint_finding(
            "a witnessed checkpoint: {reason}",
            {},
            "tree size {text} is not a plain decimal number",
            {"text": "'08'"},
        ),
        _checkpoint_finding(  # not from the parser: the reason is shown as it was said
            "checkpoint {size}: {reason}",
            {"size": 640},
            "{name.__class__} is odd",
            {"name": "sou.example/ledger"},
            reason="sou.example/ledger is odd",
        ),
    ]
    _finished_run(node, stored)
    treasurer = operator(site, "treasurer")
    shown = unescape(treasurer.get("/treasurer/audit").text)
    assert (
        "point de contrôle à 512 entrées\u202f: le point de contrôle n’est pas signé par "
        "sou.example/ledger"
    ) in shown
    assert (
        "un point de contrôle témoin\u202f: la taille de l’arbre, '08', n’est pas un simple "
        "nombre décimal"
    ) in shown
    assert "point de contrôle à 640 entrées\u202f: sou.example/ledger is odd" in shown
    assert "not signed by" not in shown and "decimal number" not in shown and "<class" not in shown
    english = unescape(treasurer.get("/treasurer/audit?lang=en").text)
    assert "checkpoint 512: checkpoint is not signed by sou.example/ledger" in english
    assert "a witnessed checkpoint: tree size '08' is not a plain decimal number" in english


def _checkpoint_finding(
    template: str,
    args: dict[str, Any],
    reason_template: str,
    reason_args: dict[str, Any],
    reason: str | None = None,
) -> dict[str, Any]:
    """A checkpoint finding as the audit stores it, quoting why the parser refused a note."""
    reason = reason or reason_template.format(**reason_args)
    return {
        "check": "checkpoint",
        "message": template.format(**args, reason=reason),
        "severity": "error",
        "template": template,
        "args": {**args, "reason": reason, "reason_template": reason_template}
        | {"reason_args": reason_args},
    }


def test_a_finding_kept_without_its_template_is_shown_as_it_was_said(site: Any, node: Any) -> None:
    older = "account member:x: stored balance 5, history gives 4"  # a run of an older node
    odd = {"template": "{code.__class__}", "args": {"code": "member:y"}}  # not from the audit
    _finished_run(
        node,
        [
            {"check": "balance", "message": older, "severity": "error"},
            {"check": "balance", "message": "member:y is off", "severity": "error", **odd},
        ],
    )
    shown = operator(site, "treasurer").get("/treasurer/audit").text
    assert older in shown and "member:y is off" in shown and "&lt;class" not in shown


def test_the_ledgers_own_words_on_fee_rules_are_read_as_their_templates() -> None:
    from audits.fees import FEE_RULE_PROBLEMS
    from audits.report import recognised

    said = "fee rule 3: follows fee rule 1, but the rule stored before it is None"
    read = recognised("fees", said, FEE_RULE_PROBLEMS)
    assert read.message == said and read.template == FEE_RULE_PROBLEMS[2]
    assert dict(read.args) == {"rule": 3, "previous": 1, "stored": "None"}
    unknown = recognised("fees", "fee rule 3: something new", FEE_RULE_PROBLEMS)
    assert unknown.message == "fee rule 3: something new" and not unknown.template
    assert "template" not in unknown.as_dict() and read.as_dict()["args"]["rule"] == 3


def test_every_finding_of_the_audit_has_its_french() -> None:
    """What pybabel extracts with babel.cfg's keywords from the audit's modules and from the
    checkpoint parser, whose reasons findings quote: every finding's template and every
    reason, each with its French; no finding is made without one."""
    import ast

    from babel.messages.extract import extract_from_file
    from babel.messages.frontend import parse_mapping_cfg

    from tests.test_pages import ROOT, assert_all_french, template_msgids

    with (ROOT / "babel.cfg").open() as cfg:
        _, options = parse_mapping_cfg(cfg)
    keywords = options["**.py"]["keywords"]
    assert set(keywords) == {"finding", "finding_template", "CheckpointError"}
    templates: set[str] = set()
    for path in [*sorted((ROOT / "audits").glob("*.py")), ROOT / "ledger/checkpoint.py"]:
        found = extract_from_file("python", str(path), keywords=keywords)
        templates |= {m[1] for m in found if isinstance(m[1], str)}
        for call in ast.walk(ast.parse(path.read_text())):
            if not isinstance(call, ast.Call) or path.name == "report.py":
                continue
            name = getattr(call.func, "id", None)
            assert name != "Finding", f"{path.name}:{call.lineno}: a Finding without template"
            if name == "finding":  # its template a literal, or one marked finding_template
                template = call.args[1]
                assert isinstance(template, ast.Constant | ast.Name), (path.name, call.lineno)
    assert len(templates) > 90, len(templates)
    from audits import pages

    words = {*pages.CHECK_WORDS.values(), pages.OTHER_CHECK, *pages.STATUS_WORDS.values()}
    assert_all_french(templates | words | template_msgids(ROOT / "web/templates/audit/audit.html"))


def test_the_backing_shows_euros_units_and_ratio(site: Any, node: Any) -> None:
    _finished_run(node, [], backing=12_000, outstanding=10_000)
    shown = operator(site, "treasurer").get("/treasurer/audit?lang=en").text
    assert "Euros in reserve: 120.00 EUR." in shown
    assert "Units in circulation: 100.00 SOU." in shown
    assert "120.0% of the units are backed" in shown


# -- the schema ------------------------------------------------------------------------------


def test_the_migration_makes_the_table_of_the_model_and_takes_it_away(engine: Any) -> None:
    from importlib.resources import files

    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from ledger.models import metadata
    from runtime.node import migrate

    def ours(obj: Any, _name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name == "audit_runs"

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": ours}
        )
        assert compare_metadata(context, metadata) == []
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0016@0015")
    assert "audit_runs" not in inspect(engine).get_table_names()
    migrate(engine)
    assert "audit_runs" in inspect(engine).get_table_names()
