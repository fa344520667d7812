"""Reactions are given every ledger event of the sealed log, in log order, at least once,
and by one process at a time when run as scheduled jobs; on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, select, text

from ledger.canonical import canonical
from ledger.models import log_leaves
from ledger.posting import Posted
from ledger.sealer import Sealer
from ledger.service import key_event
from ledger.signing import SigningKey
from runtime.jobs import Job, Scheduler
from runtime.reactions import (
    KeyChanged,
    LedgerEvent,
    Reaction,
    TransferPosted,
    cursor,
    deliver,
    reaction_job,
)
from tests import jobs_worker
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book
from tests.jobs_worker import Clock, make_effect_tables
from tests.test_jobs import BASE_MS, run_children


@dataclass(frozen=True)
class Village:
    alice: str
    bob: str
    payment: Posted
    payment_order: dict[str, object]
    bob_key: str  # revoked after the payment
    leaves: list[tuple[int, int | None, int | None]]  # (idx, transfer id, key event id)


def seal(engine: Engine) -> int:
    return Sealer(engine, NODE_KEY, ORIGIN).seal_all()


def leaves(engine: Engine) -> list[tuple[int, int | None, int | None]]:
    query = select(log_leaves.c.idx, log_leaves.c.transfer_id, log_leaves.c.key_event_id)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query.order_by(log_leaves.c.idx))]


def revoke(book: Book, owner: str, key: SigningKey) -> None:
    event = key_event(
        "revoke", origin=ORIGIN, owner=owner, public_key=key.public_key, signer=NODE_KEY
    )
    book.ledger.revoke_key(event, NODE_KEY.sign_bytes(canonical(event)))


@pytest.fixture
def village(book: Book, engine: Engine) -> Village:
    """Keys registered, top-ups, a payment, a key revoked: all sealed."""
    alice, bob = book.member("alice", 10_000), book.member("bob")
    signed = book.payment(alice, bob, 2_500)
    payment = book.post(signed)
    assert isinstance(payment, Posted)
    bob_key = book.keys[bob]
    revoke(book, bob, bob_key)
    book.member("carol", 700)
    seal(engine)
    found = leaves(engine)
    assert len(found) >= 8
    return Village(alice, bob, payment, signed.order, bob_key.key_id, found)


def collect(engine: Engine, name: str = "tests.collect", **options: object) -> list[LedgerEvent]:
    got: list[LedgerEvent] = []
    reaction = Reaction(name, got.append)
    while deliver(engine, reaction, **options):  # type: ignore[arg-type]
        pass
    return got


def test_every_transfer_and_key_event_is_given_in_log_order(
    village: Village, engine: Engine
) -> None:
    events = collect(engine, limit=3)

    assert [e.position for e in events] == list(range(len(village.leaves)))
    assert [
        (e.position, e.transfer_id, None)
        if isinstance(e, TransferPosted)
        else (e.position, None, "key")
        for e in events
    ] == [(idx, tid, None if tid else "key") for idx, tid, _ in village.leaves]
    [payment] = [
        e
        for e in events
        if isinstance(e, TransferPosted) and e.transfer_id == village.payment.transfer_id
    ]
    assert (payment.kind, payment.postings) == (
        "payment",
        {village.alice: -2_500, village.bob: 2_500},
    )
    assert payment.order == village.payment_order
    assert payment.created_ms == village.payment.created_ms
    topups = [e for e in events if isinstance(e, TransferPosted) and e.kind == "topup"]
    assert len(topups) == 2 and all(sum(t.postings.values()) == 0 for t in topups)

    keys = [e for e in events if isinstance(e, KeyChanged)]
    revoked = [k for k in keys if k.action == "revoke"]
    assert [(k.key_id, k.owner) for k in revoked] == [(village.bob_key, village.bob)]
    assert [k.owner for k in keys if k.action == "register"][:2] == ["node", "role:treasurer"]
    assert revoked[0].position > payment.position  # revoked after paying, as it happened
    with engine.connect() as conn:
        assert cursor(conn, "tests.collect") == len(village.leaves)


def test_an_event_is_given_once_sealed_and_once_only(
    village: Village, book: Book, engine: Engine
) -> None:
    assert len(collect(engine)) == len(village.leaves)
    book.post(book.payment(village.alice, village.bob, 100))
    assert collect(engine) == []  # committed, not yet in the log
    seal(engine)
    [late] = collect(engine)
    assert isinstance(late, TransferPosted) and late.position == len(village.leaves)
    assert late.postings == {village.alice: -100, village.bob: 100}
    assert collect(engine) == []


def test_a_handler_that_fails_is_given_the_same_event_again(
    village: Village, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    tried: list[int] = []
    handled: list[int] = []

    def flaky(event: LedgerEvent) -> None:
        tried.append(event.position)
        if event.position == 3 and tried.count(3) == 1:
            raise ConnectionError("the AMAP mailer is down")
        handled.append(event.position)

    reaction = Reaction("amap.notify", flaky)
    with caplog.at_level(logging.ERROR, logger="runtime.reactions"):
        assert deliver(engine, reaction) == 3
    assert "reaction amap.notify failed on the event at log position 3" in caplog.text
    assert "ConnectionError: the AMAP mailer is down" in caplog.text
    with engine.connect() as conn:
        assert cursor(conn, "amap.notify") == 3

    assert deliver(engine, reaction) == len(village.leaves) - 3
    assert handled == list(range(len(village.leaves)))
    assert tried == [0, 1, 2, 3, *range(3, len(village.leaves))]


def test_a_new_reaction_may_start_at_the_end_of_the_log(
    village: Village, book: Book, engine: Engine
) -> None:
    got: list[LedgerEvent] = []
    reaction = Reaction("tests.from_now", got.append, history=False)
    assert deliver(engine, reaction) == 0
    book.post(book.payment(village.alice, village.bob, 100))
    seal(engine)
    assert deliver(engine, reaction) == 1
    assert [e.position for e in got] == [len(village.leaves)]


def test_a_reaction_run_as_a_job_records_its_failure_and_resumes(
    village: Village, engine: Engine
) -> None:
    handled: list[int] = []
    failures = [2]

    def pledges(event: LedgerEvent) -> None:
        if event.position in failures:
            failures.remove(event.position)
            raise RuntimeError("no campaign")
        handled.append(event.position)

    clock = Clock(BASE_MS)
    job = reaction_job(Reaction("crowdfunding.pledges", pledges), every_s=1.0)
    assert job.name == "reactions.crowdfunding.pledges"
    node = Scheduler(engine, [job], owner="here", clock=clock)
    [failed] = node.run_due()
    assert not failed.ok and failed.error == (
        "ReactionFailed: reaction crowdfunding.pledges failed on the event at log position 2: "
        "RuntimeError: no campaign"
    )
    clock.ms += 1000
    [resumed] = node.run_due()
    assert resumed.ok and resumed.summary == f"{len(village.leaves) - 2} events delivered"
    assert handled == list(range(len(village.leaves)))
    clock.ms += 1000
    [idle] = node.run_due()
    assert idle.ok and idle.summary is None


def test_a_reaction_job_starts_no_handler_in_the_last_half_of_its_lease(
    village: Village, engine: Engine
) -> None:
    clock = Clock(BASE_MS)
    handled: list[int] = []

    def slow(event: LedgerEvent) -> None:
        handled.append(event.position)
        clock.ms += 15_000  # a quarter of the lease

    node = Scheduler(
        engine, [reaction_job(Reaction("tests.slow", slow), lease_s=60)], owner="x", clock=clock
    )
    [run] = node.run_due()
    assert run.summary == "2 events delivered" and run.kept_lease
    assert node.run_due() == []  # due again at the first second after it finished
    clock.ms += 1000
    [run] = node.run_due()
    assert run.summary == "2 events delivered" and handled == [0, 1, 2, 3]


def test_a_deliverer_that_finds_its_cursor_moved_stops_without_moving_it_back(
    village: Village, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # Outside a job's lease nothing keeps two deliverers apart: here a second one runs (and
    # delivers everything) while the first is handling the event at position 0.
    given: list[tuple[int, int]] = []  # (how deep in deliveries, position)
    depth = [0]

    def handle(event: LedgerEvent) -> None:
        given.append((depth[0], event.position))
        if len(given) == 1:
            depth[0] += 1
            assert deliver(engine, reaction) == len(village.leaves)
            depth[0] -= 1

    reaction = Reaction("tests.twice", handle)
    with caplog.at_level(logging.WARNING, logger="runtime.reactions"):
        assert deliver(engine, reaction) == 0
    assert "reaction tests.twice: its cursor moved" in caplog.text
    assert given == [(0, 0)] + [(1, p) for p in range(len(village.leaves))]
    with engine.connect() as conn:
        assert cursor(conn, "tests.twice") == len(village.leaves)  # not moved back to 1


def test_reaction_names_are_checked() -> None:
    with pytest.raises(ValueError, match="reaction name"):
        Reaction("Notify", lambda _event: None)
    with pytest.raises(ValueError, match="too long to name its job"):
        Reaction("a." + "b" * 90, lambda _event: None)
    assert isinstance(reaction_job(Reaction("a.b", lambda _event: None)), Job)


PROCESSES = 3
LIMIT = 2  # events a run: the log takes several rounds to deliver


def test_processes_racing_to_deliver_give_each_event_once(
    village: Village, engine: Engine, db_url: str
) -> None:
    make_effect_tables(engine)
    rounds = len(village.leaves) // LIMIT + 4
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(PROCESSES), context.Queue()
    children = [
        context.Process(
            target=jobs_worker.race_deliveries,
            daemon=True,
            args=(db_url, f"process-{k}", rounds, LIMIT, BASE_MS, barrier, queue),
        )
        for k in range(PROCESSES)
    ]
    reports = run_children(children, queue)

    assert [errors for _, _, errors in reports] == [[]] * PROCESSES
    with engine.connect() as conn:
        seen = [int(p) for p in conn.scalars(text("SELECT position FROM reaction_seen"))]
        assert cursor(conn, jobs_worker.RECORDER) == len(village.leaves)
    assert sorted(seen) == list(range(len(village.leaves)))
    assert sum(finished for _, finished, _ in reports) == rounds  # one run a round
