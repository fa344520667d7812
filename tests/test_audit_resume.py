"""An audit resumed from the state a clean one left checks only what came after it, and
reaches the same state as a full audit; the backing is checked day by day and the ACPR
watch measured, in both."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from audits import watch as audit_watch
from audits.audit import AuditState, audit
from audits.report import EMERGENCY, WARNING
from audits.watch import DAY_MS
from ledger.sealer import Sealer
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book


def _full(engine: Engine) -> AuditState:
    report = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert report.ok, report.findings
    assert report.full and report.state is not None
    return report.state


def _pay(book: Book, people: list[str], count: int, amount: int = 10) -> list[int]:
    return [
        book.ledger.transfer(
            book.payment(people[n % len(people)], people[(n + 1) % len(people)], amount + n)
        ).transfer_id
        for n in range(count)
    ]


def _seal(engine: Engine) -> None:
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()


def test_a_resumed_audit_checks_only_what_is_new_and_ends_where_a_full_one_does(
    book: Book, engine: Engine
) -> None:
    people = [book.member(f"r{i}", 5_000) for i in range(4)]
    _pay(book, people, 12)
    _seal(engine)
    first = _full(engine)
    new = _pay(book, people, 7)
    book.topup(people[0], 2_500)
    _seal(engine)
    resumed = audit(engine, node_public_key=NODE_KEY.public_key, workers=1, since=first)
    assert resumed.ok, resumed.findings
    assert not resumed.full and resumed.resumed_from == first.last_transfer
    assert resumed.transfers == len(new) + 1  # the payments and the top-up, nothing older
    assert resumed.state is not None
    assert resumed.state == _full(engine)
    assert resumed.state.tree_size > first.tree_size


def test_a_transfer_waiting_for_the_log_at_the_first_audit_is_checked_once_sealed(
    book: Book, engine: Engine
) -> None:
    people = [book.member(f"q{i}", 5_000) for i in range(3)]
    _pay(book, people, 4)
    _seal(engine)
    _pay(book, people, 3)  # committed, not yet sealed: still in the log's queue
    first = _full(engine)
    _seal(engine)
    resumed = audit(engine, node_public_key=NODE_KEY.public_key, workers=1, since=first)
    assert resumed.ok, resumed.findings
    assert resumed.transfers == 0 and resumed.leaves == first.tree_size + 3
    assert resumed.state == _full(engine)


def _tamper_amount(engine: Engine, transfer_id: int) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS postings_no_update"))
        conn.execute(
            text("UPDATE postings SET amount = amount + 7 WHERE transfer_id = :t AND amount > 0"),
            {"t": transfer_id},
        )


def test_a_resumed_audit_finds_a_new_transfer_altered_and_names_it(
    book: Book, engine: Engine
) -> None:
    people = [book.member(f"t{i}", 5_000) for i in range(3)]
    _pay(book, people, 5)
    _seal(engine)
    first = _full(engine)
    new = _pay(book, people, 5)
    _seal(engine)
    _tamper_amount(engine, new[2])
    resumed = audit(engine, node_public_key=NODE_KEY.public_key, workers=1, since=first)
    assert not resumed.ok and resumed.state is None
    assert new[2] in {f.transfer_id for f in resumed.findings}


def test_a_resumed_audit_finds_new_leaves_that_do_not_extend_the_signed_tree(
    book: Book, engine: Engine
) -> None:
    people = [book.member(f"l{i}", 5_000) for i in range(3)]
    _pay(book, people, 5)
    _seal(engine)
    first = _full(engine)
    _pay(book, people, 4)
    _seal(engine)
    with engine.begin() as conn:  # a new leaf's stored hash changed
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS log_leaves_no_update"))
        conn.execute(
            text("UPDATE log_leaves SET hash = :h WHERE idx = :i"),
            {"h": bytes(32), "i": first.tree_size + 1},
        )
    resumed = audit(engine, node_public_key=NODE_KEY.public_key, workers=1, since=first)
    assert any(f.leaf == first.tree_size + 1 for f in resumed.findings), resumed.findings
    # A state whose frontier is not that of the log gives findings too: the checkpoints
    # signed since no longer match the roots it leads to.
    forged = replace(first, frontier=[bytes(32).hex()] * len(first.frontier))
    again = audit(engine, node_public_key=NODE_KEY.public_key, workers=1, since=forged)
    assert any(f.check == "checkpoint" for f in again.findings), again.findings


def test_a_day_that_ended_with_more_units_than_euros_is_an_emergency(
    book: Book, engine: Engine
) -> None:
    people = [book.member(f"d{i}", 5_000) for i in range(2)]
    _seal(engine)
    first = _full(engine)
    assert first.backing >= first.outstanding
    # As if the previous audit had seen a reserve short by 1 cent at the end of its day:
    # the next day's top-up adds as much to both, so that day ends short too.
    short = replace(first, backing=first.outstanding - 1)
    book.topup(people[0], 1_000)
    _seal(engine)
    resumed = audit(engine, node_public_key=NODE_KEY.public_key, workers=1, since=short)
    emergencies = [f for f in resumed.findings if f.severity == EMERGENCY]
    assert emergencies and emergencies[0].check == "backing", resumed.findings
    assert not resumed.ok and resumed.watch.lowest_margin == -1


def test_the_acpr_watch_counts_the_last_twelve_months_of_payments(
    book: Book, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [book.member(f"a{i}", 5_000) for i in range(3)]
    paid = _pay(book, people, 6, amount=100)
    book.topup(people[0], 9_999)  # euros coming in: not a payment
    _seal(engine)
    expected = sum(100 + n for n in range(len(paid)))
    report = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert report.watch.payments_12_months == expected
    assert report.ok and not [f for f in report.findings if f.check == "acpr"]

    monkeypatch.setattr(audit_watch, "ACPR_CEILING", expected * 10 // 9)  # 90 % reached
    near = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    warnings = [f for f in near.findings if f.check == "acpr"]
    assert [f.severity for f in warnings] == [WARNING] and "90%" in warnings[0].message
    assert near.ok and near.state is not None  # a warning is not a fault of the ledger

    a_year_later = audit(
        engine,
        node_public_key=NODE_KEY.public_key,
        workers=1,
        now_ms=(near.state.day or 0) * DAY_MS + 366 * DAY_MS,
    )
    assert a_year_later.watch.payments_12_months == 0
    # Resumed, the running totals give the same figure as a full audit.
    resumed = audit(engine, node_public_key=NODE_KEY.public_key, workers=1, since=near.state)
    assert resumed.watch.payments_12_months == expected


def test_a_replay_slipped_in_after_an_audit_is_found_by_the_resumed_one(
    book: Book, engine: Engine
) -> None:
    """A copy of a signed transfer written after a clean audit: the resumed audit finds it
    among the new transfers by the copied order's key and nonce and its client id."""
    people = [book.member(f"c{i}", 5_000) for i in range(2)]
    paid = _pay(book, people, 3)
    _seal(engine)
    first = _full(engine)
    with engine.begin() as conn:
        row = conn.execute(text("SELECT * FROM transfers WHERE id = :i"), {"i": paid[0]})
        copy = {k: v for k, v in row.mappings().one().items() if k != "id"}
        columns = ", ".join(copy)
        values = ", ".join(f":{k}" for k in copy)
        insert = text(f"INSERT INTO transfers ({columns}) VALUES ({values}) RETURNING id")
        if conn.dialect.name == "sqlite":
            # SQLite keeps the unique keys in the table's own definition: no copy gets in.
            with pytest.raises(IntegrityError), conn.begin_nested():
                conn.execute(insert, copy)
            return
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for name in ("uq_transfers_nonce", "uq_transfers_client_id"):
            conn.execute(text(f"ALTER TABLE transfers DROP CONSTRAINT {name}"))
        replay = conn.execute(insert, copy).scalar_one()
    resumed = audit(engine, node_public_key=NODE_KEY.public_key, workers=1, since=first)
    said = {f.message for f in resumed.findings}
    assert f"transfer {replay} replays transfer {paid[0]} (same key and nonce)" in said, said
    assert f"transfer {replay} replays transfer {paid[0]} (same client id)" in said, said
