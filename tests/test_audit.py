"""The audit gives the same report whether it checks transfers in-process or in worker
processes, and sees what the worker processes see."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from ledger import audit_transfers
from ledger.audit import audit
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
