"""The audit gives the same report whether it checks transfers in-process or in worker
processes, and sees what the worker processes see: the worker processes read their own
ranges of transfers in the audit's snapshot, or are sent them when they cannot."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.pool import NullPool

from audits import audit as audit_module
from audits import transfers as audit_transfers
from audits.audit import Report, audit
from audits.transfers import Source
from ledger.operations import TREASURER
from ledger.sealer import Sealer
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book


def _ledger(book: Book) -> list[int]:
    people = [book.member(f"m{i}", 5_000) for i in range(6)]
    posted = []
    for n in range(24):
        outcome = book.ledger.transfer(book.payment(people[n % 6], people[(n + 1) % 6], 10 + n))
        posted.append(outcome.transfer_id)
    return posted


def _tamper(engine: Engine, transfer_id: int) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS postings_no_update"))
        conn.execute(
            text("UPDATE postings SET amount = amount + 7 WHERE transfer_id = :t AND amount > 0"),
            {"t": transfer_id},
        )


def test_worker_processes_report_what_in_process_checks_report(
    book: Book, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted = _ledger(book)
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    clean = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert clean.ok, clean.findings
    _tamper(engine, posted[5])
    _tamper(engine, posted[20])
    alone = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    monkeypatch.setattr(audit_transfers, "PARALLEL_FROM", 0)
    monkeypatch.setattr(audit_transfers, "CHUNK", 4)  # many small tasks over two workers
    seen: list[tuple[int, int]] = []
    parallel = audit(
        engine,
        node_public_key=NODE_KEY.public_key,
        workers=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert parallel.findings == alone.findings
    assert {f.transfer_id for f in alone.findings} >= {posted[5], posted[20]}
    assert (parallel.transfers, parallel.leaves) == (alone.transfers, alone.leaves)
    assert seen[-1][0] == parallel.transfers and len(seen) > 2  # progress as tasks finish


# -- the worker processes read their own ranges ----------------------------------------------


def _village(book: Book) -> dict[str, int]:
    """Payments, a refund of one, a correction of another: transfers that reference others."""
    people = [book.member(f"v{i}", 5_000) for i in range(4)]
    ids = [
        book.ledger.transfer(book.payment(people[n % 4], people[(n + 1) % 4], 100 + n)).transfer_id
        for n in range(12)
    ]
    refunded, corrected = ids[3], ids[7]
    refund = book.order(
        "refund",
        people[0],
        from_=people[0],
        to=people[3],
        amount=50,
        currency=book.local,
        ref=refunded,
    )
    correction = book.order("correction", TREASURER, ref=corrected, memo="paid twice")
    return {
        "payment": ids[5],
        "refunded": refunded,
        "refund": book.ledger.transfer(refund).transfer_id,
        "corrected": corrected,
        "correction": book.ledger.transfer(correction).transfer_id,
    }


def _alter(url: str, *statements: str) -> None:
    """Change stored history as an attacker would: protections off, then committed."""
    engine = create_engine(url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")

    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            else:
                names = conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
                for name in names.all():
                    conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _in_workers(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Report:
    monkeypatch.setattr(audit_transfers, "PARALLEL_FROM", 0)
    monkeypatch.setattr(audit_transfers, "CHUNK", 3)  # many small ranges over two workers
    return audit(engine, node_public_key=NODE_KEY.public_key, workers=2)


def _alone(engine: Engine) -> Report:
    return audit(engine, node_public_key=NODE_KEY.public_key, workers=1)


TAMPERS: dict[str, tuple[Callable[[dict[str, int]], list[str]], tuple[str, ...]]] = {
    # what is done to the stored rows; which transfers the findings must name
    "a transfer deleted, its postings left": (
        lambda ids: [f"DELETE FROM transfers WHERE id = {ids['payment']}"],
        ("payment",),
    ),
    "the order of a refunded payment made unreadable": (
        lambda ids: [f"UPDATE transfers SET order_json = '{{' WHERE id = {ids['refunded']}"],
        ("refunded", "refund"),
    ),
    "postings moved to an account that does not exist": (
        lambda ids: [
            f"UPDATE postings SET account_id = 9999 WHERE transfer_id IN "
            f"({ids['refunded']}, {ids['refund']}) AND amount > 0"
        ],
        ("refunded", "refund"),
    ),
    "a corrected payment deleted with its postings": (
        lambda ids: [
            f"DELETE FROM postings WHERE transfer_id = {ids['corrected']}",
            f"DELETE FROM transfers WHERE id = {ids['corrected']}",
        ],
        ("correction",),
    ),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_workers_reading_their_ranges_find_what_the_audit_finds_alone(
    book: Book, engine: Engine, db_url: str, tamper: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _village(book)
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    alter, named = TAMPERS[tamper]
    _alter(db_url, *alter(ids))
    alone = _alone(engine)
    parallel = _in_workers(engine, monkeypatch)
    assert parallel.findings == alone.findings
    assert {f.transfer_id for f in alone.findings} >= {ids[n] for n in named}
    assert (parallel.transfers, parallel.leaves, parallel.unsealed) == (
        alone.transfers,
        alone.leaves,
        alone.unsealed,
    )


def test_transfers_committed_after_the_snapshot_are_not_read(
    book: Book, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node goes on taking payments while the audit runs: workers whose read starts later
    read only what the audit's snapshot holds (on SQLite: later transfers have later ids)."""
    _village(book)
    payer, payee = book.member("late-payer", 1_000), book.member("late-payee")
    late = [book.payment(payer, payee, 10 + n) for n in range(5)]
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    before = _alone(engine)
    opened = audit_transfers.TransferAudit.__enter__

    def pay_then_open(self: audit_transfers.TransferAudit) -> audit_transfers.TransferAudit:
        for signed in late:  # after the audit's snapshot, before any worker reads
            book.ledger.transfer(signed)
        return opened(self)

    monkeypatch.setattr(audit_transfers.TransferAudit, "__enter__", pay_then_open)
    during = _in_workers(engine, monkeypatch)
    assert during.ok, during.findings
    assert during.transfers == before.transfers == _alone(engine).transfers - len(late)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite exports none
def test_on_postgresql_workers_read_the_audits_own_snapshot(
    book: Book, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a change to old history after the audit started is invisible to the workers:
    they import the snapshot the audit's transaction exported."""
    ids = _village(book)
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    shared = audit_module.shared_snapshot

    def export_then_alter(conn: Connection) -> Source | None:
        source = shared(conn)
        assert source is not None and source.snapshot
        changed = f"transfer_id = {ids['payment']} AND amount > 0"
        _alter(db_url, f"UPDATE postings SET amount = amount + 7 WHERE {changed}")
        return source

    monkeypatch.setattr(audit_module, "shared_snapshot", export_then_alter)
    during = _in_workers(engine, monkeypatch)
    assert during.ok, during.findings
    monkeypatch.undo()
    after = _alone(engine)
    assert ids["payment"] in {f.transfer_id for f in after.findings}


@pytest.mark.parametrize(
    ("db_url", "reach"),
    [
        *((db, "no snapshot to share") for db in ("sqlite", "postgresql")),
        ("postgresql", "the export refused"),  # only PostgreSQL exports snapshots
        *((db, "the snapshot out of reach") for db in ("sqlite", "postgresql")),
    ],
    indirect=["db_url"],
)
def test_workers_that_cannot_read_leave_the_reading_to_the_audit(
    book: Book,
    engine: Engine,
    db_url: str,
    reach: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    """The audit's process reads the ranges then: and sends them to the workers, or checks
    those the workers could not read itself. The report is the same."""
    ids = _village(book)
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    _alter(db_url, f"DELETE FROM transfers WHERE id = {ids['payment']}")
    shared = audit_module.shared_snapshot

    def unreachable(conn: Connection) -> Source | None:
        source = shared(conn)
        assert source is not None
        if source.snapshot is None:  # SQLite: a file that cannot be opened
            return replace(source, args=(str(tmp_path / "missing" / "sou.db"),))
        return replace(source, kwargs={**source.kwargs, "dbname": "sou_no_such_database"})

    if reach == "no snapshot to share":
        monkeypatch.setattr(audit_module, "shared_snapshot", lambda conn: None)
    elif reach == "the export refused":  # as a server that cannot export would
        monkeypatch.setattr(audit_transfers, "EXPORT", "SELECT no_such_function()")
    else:
        monkeypatch.setattr(audit_module, "shared_snapshot", unreachable)
    parallel = _in_workers(engine, monkeypatch)
    assert parallel.findings == _alone(engine).findings
    assert ids["payment"] in {f.transfer_id for f in parallel.findings}


WORKERS_MAIN = """
import sys
from pathlib import Path

if __name__ == "__mp_main__":  # as spawn runs a program's main in each new process
    with Path(sys.argv[2]).open("a") as seen:
        seen.write("the program's main ran in a worker\\n")

if __name__ == "__main__":
    from audits import transfers
    from audits.audit import audit
    from runtime.database import make_engine, read_only

    transfers.PARALLEL_FROM, transfers.CHUNK = 0, 4
    engine = read_only(make_engine(sys.argv[1], pool_size=2))
    report = audit(engine, node_public_key=bytes.fromhex(sys.argv[3]), workers=2)
    print(report.ok, report.transfers)
"""


def test_the_workers_do_not_run_the_programs_main(
    book: Book, engine: Engine, db_url: str, tmp_path: Any
) -> None:
    """A worker needs the transfer checks only, not what the program that started the audit
    imports (`sou` imports the whole node): it starts without running the program's main."""
    _ledger(book)
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    alone = _alone(engine)
    assert alone.ok, alone.findings
    program, seen = tmp_path / "program.py", tmp_path / "seen.txt"
    program.write_text(WORKERS_MAIN)
    done = subprocess.run(
        [sys.executable, str(program), db_url, str(seen), NODE_KEY.public_key.hex()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == ["True", str(alone.transfers)]
    assert not seen.exists(), seen.read_text()


def test_a_refused_order_keeps_the_ledgers_reason_and_its_code(
    book: Book, engine: Engine, db_url: str
) -> None:
    """The payment a refund refers to altered so that the refund no longer goes back to its
    payer: the refund's finding quotes the ledger's reason, with the code the page says it by."""
    ids = _village(book)
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    with engine.connect() as conn:
        stored = conn.scalar(text(f"SELECT order_json FROM transfers WHERE id = {ids['refunded']}"))
    order = json.loads(stored)
    order["to"] = order["from"]
    altered = json.dumps(order, separators=(",", ":"), sort_keys=True)
    _alter(db_url, f"UPDATE transfers SET order_json = '{altered}' WHERE id = {ids['refunded']}")
    (refund,) = [f for f in _alone(engine).findings if f.transfer_id == ids["refund"]]
    reason = "a refund goes from the payee of the original payment back to its payer"
    assert refund.message == (f"transfer {ids['refund']}: the signed order is not valid: {reason}")
    assert dict(refund.args) == {
        "transfer": ids["refund"],
        "reason": reason,
        "reason_code": "invalid_reference",
    }


def test_a_checkpoint_note_altered_keeps_why_it_does_not_hold_and_its_template(
    book: Book, engine: Engine, db_url: str
) -> None:
    """A character of a stored checkpoint's signature changed: the finding quotes the
    parser's reason, with the template and values the page says it by."""
    _ledger(book)
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    with engine.connect() as conn:
        size, note = conn.execute(
            text("SELECT tree_size, note FROM checkpoints ORDER BY tree_size LIMIT 1")
        ).one()
    body, stamp = note.rsplit(" ", 1)  # the signature line's last field: key ID and signature
    changed = f"{body} {stamp[:10]}{'A' if stamp[10] != 'A' else 'B'}{stamp[11:]}"
    _alter(db_url, f"UPDATE checkpoints SET note = '{changed}' WHERE tree_size = {size}")
    (found,) = [f for f in _alone(engine).findings if f.check == "checkpoint"]
    reason = f"signature by {ORIGIN} does not match the checkpoint"
    assert found.message == f"checkpoint {size}: {reason}"
    said = json.loads(json.dumps(found.as_dict()))  # as the run is stored
    assert said["args"] == {
        "size": size,
        "reason": reason,
        "reason_template": "signature by {name} does not match the checkpoint",
        "reason_args": {"name": ORIGIN},
    }
