"""The money under concurrency, on SQLite and PostgreSQL (DESIGN musts 5, 8 and 9).

Many threads (or processes) race to overspend one account, to post one order twice, to
refund one payment too often, while the sealer runs; then a node is killed mid-flight.
Every assertion is about money and counts, never about time: who wins a race is free,
how many win is not.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from audits.audit import audit
from ledger.canonical import canonical
from ledger.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidReference,
    LedgerError,
    NodeBusy,
    RevokedKey,
)
from ledger.models import accounts, log_leaves, log_queue, postings, transfers
from ledger.poster import Poster
from ledger.posting import Outcome, Posted
from ledger.sealer import Sealer
from ledger.service import Ledger, key_event
from ledger.signing import SignedOrder, SigningKey
from runtime.database import make_engine
from runtime.sealer import SealerThread
from tests import crash_worker
from tests.conftest import NODE_KEY, ORIGIN
from tests.factories import Book, register

ROOT = Path(__file__).resolve().parent.parent
THREADS = 64
PRICE = 700  # 10,000 cents afford 14 of these, leaving 200
FUNDS = 10_000
AFFORDABLE = FUNDS // PRICE


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A pool wide enough for every racing thread to hold its own transaction at once."""
    engine = make_engine(db_url, pool_size=THREADS + 6)
    yield engine
    engine.dispose()


@pytest.fixture
def poster(book: Book) -> Iterator[Poster]:
    poster = Poster(book.ledger).start()
    yield poster
    poster.stop()


def race(n: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Run attempt(0..n-1) in n threads released together; what each returned or raised."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = attempt(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), name=f"racer-{i}") for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a racer is stuck"
    return results


def via_poster(poster: Poster, signed: SignedOrder) -> Outcome:
    try:
        return poster.submit(signed).result(timeout=60)
    except LedgerError as exc:
        return exc


def via_ledger(ledger: Ledger, signed: SignedOrder) -> Outcome:
    """One order, one database transaction of its own."""
    return ledger.post([signed])[0]


def outcomes_only(results: list[Any]) -> list[Outcome]:
    """Every result must be an outcome of the ledger: a database error is a failure."""
    unexpected = [r for r in results if not isinstance(r, Posted | LedgerError)]
    assert not unexpected, f"{len(unexpected)} racers failed, first: {unexpected[0]!r}"
    return results


def all_balances(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            r.code: r.balance for r in conn.execute(select(accounts.c.code, accounts.c.balance))
        }


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def assert_balances_replay(engine: Engine) -> None:
    """Every stored balance equals the sum of its account's postings (must 2)."""
    replayed = (
        select(postings.c.account_id, func.sum(postings.c.amount).label("total"))
        .group_by(postings.c.account_id)
        .subquery()
    )
    query = select(
        accounts.c.code, accounts.c.balance, func.coalesce(replayed.c.total, 0).label("replayed")
    ).outerjoin(replayed, replayed.c.account_id == accounts.c.id)
    with engine.connect() as conn:
        rows = list(conn.execute(query))
    differing = [(r.code, r.balance, r.replayed) for r in rows if r.balance != r.replayed]
    assert not differing, f"stored balance != replayed postings: {differing}"
    assert rows


def assert_no_half_transfer(engine: Engine) -> None:
    """No transfer without postings, no postings without their transfer, every leg sums to 0."""
    with engine.connect() as conn:
        bare = conn.scalars(
            select(transfers.c.id).where(
                ~select(postings.c.transfer_id)
                .where(postings.c.transfer_id == transfers.c.id)
                .exists()
            )
        ).all()
        orphans = conn.scalars(
            select(postings.c.transfer_id).where(
                ~select(transfers.c.id).where(transfers.c.id == postings.c.transfer_id).exists()
            )
        ).all()
        unbalanced = conn.scalars(
            select(postings.c.transfer_id)
            .group_by(postings.c.transfer_id, postings.c.currency)
            .having(func.sum(postings.c.amount) != 0)
        ).all()
    assert (bare, orphans, unbalanced) == ([], [], [])


def seal_and_audit(engine: Engine) -> None:
    Sealer(engine, NODE_KEY, ORIGIN).seal_all()
    report = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert report.ok, report.findings[:10]
    assert report.unsealed == 0


def assert_one_overspend_race(
    book: Book,
    engine: Engine,
    payer: str,
    payees: list[str],
    results: list[Any],
    before: dict[str, int],
    transfers_before: int,
    orders: int,
) -> None:
    """Exactly what the payer could afford went through, to the right payees, once."""
    outcomes = outcomes_only(results)
    posted = [o for o in outcomes if isinstance(o, Posted)]
    refused = [o for o in outcomes if not isinstance(o, Posted)]
    affordable = min(orders, before[payer] // PRICE)
    assert len(posted) == affordable
    assert all(isinstance(o, InsufficientFunds) for o in refused), Counter(map(type, refused))
    assert len(refused) == orders - affordable
    assert len({p.transfer_id for p in posted}) == affordable
    assert count(engine, transfers) == transfers_before + affordable

    after = all_balances(engine)
    assert after[payer] == before[payer] - affordable * PRICE
    assert sum(after[p] - before[p] for p in payees) == affordable * PRICE
    received = Counter(next(c for c, a in p.postings.items() if a > 0) for p in posted)
    for payee in payees:
        assert after[payee] - before[payee] == received[payee] * PRICE
    moved = {payer, *payees}
    assert {c: b for c, b in after.items() if c not in moved} == {
        c: b for c, b in before.items() if c not in moved
    }
    assert_balances_replay(engine)


# -- 1. 64 threads racing to overspend one account -------------------------------------------


@pytest.mark.parametrize("via", ["ledger", "poster"])
def test_64_racing_payments_cannot_overspend_one_account(
    book: Book, engine: Engine, poster: Poster, via: str
) -> None:
    # Payees opened before and after the payer: their row locks come before and after its.
    payees = [book.member(f"early{i}") for i in range(4)]
    payer = book.member("payer", FUNDS)
    payees += [book.member(f"late{i}") for i in range(4)]
    orders = [book.payment(payer, payees[i % len(payees)], PRICE) for i in range(THREADS)]
    before, transfers_before = all_balances(engine), count(engine, transfers)

    if via == "ledger":  # one transaction per order: row locks / BEGIN IMMEDIATE
        results = race(THREADS, lambda i: via_ledger(book.ledger, orders[i]))
    else:  # group commit: batches of whatever the 64 callers queued
        results = race(THREADS, lambda i: via_poster(poster, orders[i]))

    assert_one_overspend_race(
        book, engine, payer, payees, results, before, transfers_before, THREADS
    )
    assert book.balance(payer) == FUNDS - AFFORDABLE * PRICE == 200


# -- 2. the same race across processes -------------------------------------------------------

PROCESSES = 4
PER_PROCESS = 16
RACE_SEED = hashlib.sha256(b"sou-test-process-race-payer").digest()


def test_processes_cannot_overspend_one_account(book: Book, engine: Engine, db_url: str) -> None:
    # The payer's key comes from a seed the children are given; the parent registers it.
    payer = "member:process-payer"
    book.ledger.open_account(payer)
    register(book.ledger, NODE_KEY, payer, SigningKey(RACE_SEED))
    book.topup(payer, FUNDS)
    payees = [book.member(f"seller{i}") for i in range(3)]
    before, transfers_before = all_balances(engine), count(engine, transfers)

    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(PROCESSES), context.Queue()
    children = [
        context.Process(
            target=crash_worker.race_in_process,
            daemon=True,
            args=(
                db_url,
                RACE_SEED,
                payer,
                payees,
                k * PER_PROCESS,
                PER_PROCESS,
                PRICE,
                barrier,
                queue,
            ),
        )
        for k in range(PROCESSES)
    ]
    for child in children:
        child.start()
    try:
        reports = [queue.get(timeout=180) for _ in children]
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    assert [c.exitcode for c in children] == [0] * PROCESSES

    lines = [line for report in reports for line in report]
    assert [line for line in lines if line[0] == "error"] == []
    assert len(lines) == PROCESSES * PER_PROCESS
    outcomes = [as_outcome(kind, found, legs) for kind, found, legs in lines]
    assert_one_overspend_race(
        book, engine, payer, payees, outcomes, before, transfers_before, PROCESSES * PER_PROCESS
    )


COPIES = 8  # of each order, in each process


def test_copies_of_orders_in_flight_across_processes_are_answered_as_replays(
    book: Book, engine: Engine, db_url: str
) -> None:
    # The payer can afford the ten orders exactly once each: a copy judged after its
    # original was posted finds the money gone, and must still be answered as the replay.
    payer = book.member("retrying-phone")
    shop = book.member("shop")
    amounts = [300 + 10 * i for i in range(10)]
    book.topup(payer, sum(amounts))
    orders = [book.payment(payer, shop, amount) for amount in amounts]
    transfers_before = count(engine, transfers)

    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(PROCESSES), context.Queue()
    signed = [(o.order, o.signature) for o in orders]
    children = [
        context.Process(
            target=crash_worker.copies_in_process,
            daemon=True,
            args=(db_url, signed, COPIES, barrier, queue),
        )
        for _ in range(PROCESSES)
    ]
    for child in children:
        child.start()
    try:
        reports = [queue.get(timeout=180) for _ in children]
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    assert [c.exitcode for c in children] == [0] * PROCESSES

    lines = [line for report in reports for line in report]
    assert len(lines) == PROCESSES * COPIES * len(orders)
    answers = Counter((kind, code) for _, kind, code, _ in lines if kind != "posted")
    assert not answers, f"copies of posted orders were answered {dict(answers)}"
    by_order: dict[int, set[int]] = {}
    for i, _, transfer_id, _ in lines:
        by_order.setdefault(i, set()).add(transfer_id)
    assert all(len(ids) == 1 for ids in by_order.values()), by_order
    assert sum(not replayed for *_, replayed in lines) == len(orders)
    assert count(engine, transfers) == transfers_before + len(orders)
    assert (book.balance(payer), book.balance(shop)) == (0, sum(amounts))
    assert_balances_replay(engine)


def as_outcome(kind: str, found: Any, legs: dict[str, int] | None) -> Outcome:
    """An outcome as a child process reported it: (posted, id, postings) or (refused, code)."""
    if kind == "posted" and legs is not None:
        return Posted(found, "payment", legs, 0)
    return InsufficientFunds(found) if found == "insufficient_funds" else LedgerError(found)


# -- 3. a hot merchant -----------------------------------------------------------------------


def test_hot_merchant_receives_every_payment(book: Book, engine: Engine, poster: Poster) -> None:
    merchant = book.member("bakery")
    payers = [book.member(f"customer{i}", 1_000 + i) for i in range(THREADS)]
    amounts = [[1 + (i * 5 + n) % 150 for n in range(5)] for i in range(THREADS)]
    before = all_balances(engine)

    def pay_five(i: int) -> list[Outcome]:
        return [via_poster(poster, book.payment(payers[i], merchant, a)) for a in amounts[i]]

    results = race(THREADS, pay_five)
    assert not [r for r in results if not isinstance(r, list)], results
    outcomes = [o for r in results for o in r]
    assert all(isinstance(o, Posted) for o in outcomes), Counter(map(type, outcomes))
    assert len({o.transfer_id for o in outcomes}) == THREADS * 5

    after = all_balances(engine)
    total = sum(map(sum, amounts))
    assert after[merchant] == before[merchant] + total
    for payer, paid in zip(payers, amounts, strict=True):
        assert after[payer] == before[payer] - sum(paid)
    assert_balances_replay(engine)
    seal_and_audit(engine)


# -- 4. idempotency under concurrency --------------------------------------------------------


def test_one_order_sent_32_times_at_once_posts_once(
    book: Book, engine: Engine, poster: Poster
) -> None:
    alice, bob = book.member("alice", 5_000), book.member("bob")
    order = book.payment(alice, bob, 1_234)
    transfers_before = count(engine, transfers)

    results = outcomes_only(
        race(32, lambda i: via_ledger(book.ledger, order) if i % 2 else via_poster(poster, order))
    )

    posted = [o for o in results if isinstance(o, Posted)]
    assert len(posted) == 32, Counter(map(type, results))
    assert len({o.transfer_id for o in posted}) == 1
    assert sum(not o.replayed for o in posted) == 1  # one caller posted, 31 heard of it
    assert count(engine, transfers) == transfers_before + 1
    with engine.connect() as conn:
        assert (
            conn.scalar(
                select(func.count())
                .select_from(transfers)
                .where(transfers.c.client_id == order.order["id"])
            )
            == 1
        )
    assert (book.balance(alice), book.balance(bob)) == (5_000 - 1_234, 1_234)
    assert_balances_replay(engine)


def test_one_client_id_with_32_different_bodies_is_accepted_once(
    book: Book, engine: Engine, poster: Poster
) -> None:
    alice, bob = book.member("alice", 5_000), book.member("bob")
    orders = [book.payment(alice, bob, 100 + i, client_id="basket-42") for i in range(32)]
    transfers_before = count(engine, transfers)

    results = outcomes_only(
        race(
            32,
            lambda i: (
                via_ledger(book.ledger, orders[i]) if i % 2 else via_poster(poster, orders[i])
            ),
        )
    )

    posted = [o for o in results if isinstance(o, Posted)]
    assert len(posted) == 1
    assert [type(o) for o in results if o is not posted[0]] == [IdempotencyConflict] * 31
    assert count(engine, transfers) == transfers_before + 1
    amount = posted[0].postings[bob]
    assert (book.balance(alice), book.balance(bob)) == (5_000 - amount, amount)
    assert_balances_replay(engine)


# A payer's phone that did not hear the answer sends the same order again: must 8 says it
# gets the first result, even when the order would now be refused (its payer already paid).
def test_replay_of_an_order_that_emptied_the_account_gets_its_first_result(book: Book) -> None:
    alice, bob = book.member("alice", 1_000), book.member("bob")
    order = book.payment(alice, bob, 1_000)
    first = book.post(order)
    assert isinstance(first, Posted)
    again = book.post(order)
    assert isinstance(again, Posted), again
    assert (again.transfer_id, again.replayed) == (first.transfer_id, True)


def test_reused_client_id_for_an_unaffordable_order_is_a_conflict(book: Book) -> None:
    alice, bob = book.member("alice", 1_000), book.member("bob")
    assert isinstance(book.post(book.payment(alice, bob, 600, client_id="basket-7")), Posted)
    other = book.post(book.payment(alice, bob, 700, client_id="basket-7"))
    assert isinstance(other, IdempotencyConflict), other


# -- 5. concurrent partial refunds -----------------------------------------------------------


def test_concurrent_partial_refunds_never_exceed_the_payment(
    book: Book, engine: Engine, poster: Poster
) -> None:
    customer = book.member("customer", 5_000)
    shop = book.member("shop", 5_000)  # enough to refund far more than the payment
    payment = book.ledger.transfer(book.payment(customer, shop, 1_000))
    refunds = [
        book.order(
            "refund",
            shop,
            from_=shop,
            to=customer,
            amount=100,
            currency=book.local,
            ref=payment.transfer_id,
        )
        for _ in range(20)
    ]

    results = outcomes_only(
        race(
            20,
            lambda i: (
                via_ledger(book.ledger, refunds[i]) if i % 2 else via_poster(poster, refunds[i])
            ),
        )
    )

    accepted = [o for o in results if isinstance(o, Posted)]
    assert len(accepted) == 10
    assert [type(o) for o in results if not isinstance(o, Posted)] == [InvalidReference] * 10
    assert (book.balance(customer), book.balance(shop)) == (5_000, 5_000)
    with engine.connect() as conn:
        refunded = conn.scalar(
            select(func.sum(postings.c.amount))
            .join(transfers, transfers.c.id == postings.c.transfer_id)
            .where(
                transfers.c.ref_id == payment.transfer_id,
                transfers.c.kind == "refund",
                postings.c.amount > 0,
            )
        )
    assert refunded == 1_000
    assert_balances_replay(engine)


# -- 6. the sealer runs while payments pour in -----------------------------------------------


def test_sealer_running_with_payments_logs_each_transfer_once(book: Book, engine: Engine) -> None:
    payers = [book.member(f"payer{i}", 1_000_000) for i in range(16)]
    shops = [book.member(f"shop{i}") for i in range(4)]
    per_payer, chunk = 150, 10
    sealer = Sealer(engine, NODE_KEY, ORIGIN)
    sealing = SealerThread(sealer, 0.05).start()
    # A second sealer in the poster: two sealers race for every round.
    other = Sealer(engine, NODE_KEY, ORIGIN)
    poster = Poster(book.ledger, sealer=other, seal_every=0.05).start()
    try:

        def pay(i: int) -> list[Outcome]:
            done: list[Outcome] = []
            for start in range(0, per_payer, chunk):
                futures = [
                    poster.submit(book.payment(payers[i], shops[(i + n) % 4], 1 + n))
                    for n in range(start, start + chunk)
                ]
                done.extend(f.result(timeout=60) for f in futures)
            return done

        results = race(len(payers), pay)
    finally:
        poster.stop()
        sealing.stop()
    assert not [r for r in results if not isinstance(r, list)], results
    posted = [o for r in results for o in r]
    assert all(isinstance(o, Posted) for o in posted)
    assert len({o.transfer_id for o in posted}) == len(payers) * per_payer

    sealer.seal_all()
    with engine.connect() as conn:
        leaves = conn.scalars(
            select(log_leaves.c.transfer_id).where(log_leaves.c.transfer_id.is_not(None))
        ).all()
        stored = set(conn.scalars(select(transfers.c.id)))
        indexes = conn.scalars(select(log_leaves.c.idx).order_by(log_leaves.c.idx)).all()
    assert len(leaves) == len(set(leaves)) == len(stored)
    assert set(leaves) == stored >= {o.transfer_id for o in posted}
    assert indexes == list(range(len(indexes)))
    assert count(engine, log_queue) == 0
    assert_balances_replay(engine)
    seal_and_audit(engine)


def test_a_stopped_poster_has_sealed_everything_it_posted(book: Book, engine: Engine) -> None:
    payer, shop = book.member("payer", 10_000), book.member("shop")
    # No round comes due while posting: only the one that stopping runs seals them.
    poster = Poster(book.ledger, sealer=Sealer(engine, NODE_KEY, ORIGIN), seal_every=10**6)
    poster.start()
    futures = [poster.submit(book.payment(payer, shop, 1 + n)) for n in range(20)]
    posted = [f.result(timeout=60) for f in futures]
    poster.stop()
    assert count(engine, log_queue) == 0
    with engine.connect() as conn:
        leaves = set(conn.scalars(select(log_leaves.c.transfer_id)))
    assert {p.transfer_id for p in posted} <= leaves
    assert isinstance(poster.submit(book.payment(payer, shop, 1)).exception(), NodeBusy)


# -- 7. kill -9 in the middle of posting -----------------------------------------------------

ACKED_BEFORE_KILL = 300


def test_acknowledged_transfers_survive_kill_9(
    book: Book, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    payers = crash_worker_payers(book, count=6)
    engine.dispose()  # the worker is the only one at work now
    errors = (tmp_path / "worker.stderr").open("w+")

    worker = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "crash_worker.py"),
            db_url,
            "--node-seed",
            NODE_KEY.seed.hex(),
            "--payers",
            str(len(payers)),
            "--name",
            "crash",
        ],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(worker.stdout or ()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90
    while len(lines) < ACKED_BEFORE_KILL and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if worker.poll() is not None:
        errors.seek(0)
        pytest.fail(f"the worker stopped by itself: {errors.read()}")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    reader.join(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    # Ids printed before the kill landed are acknowledged too; a torn last line is not.
    acked = [int(line) for line in lines if line.endswith("\n")]
    assert len(acked) >= ACKED_BEFORE_KILL, "the worker acknowledged too few in 90 s"
    assert len(set(acked)) == len(acked)
    if db_url.startswith("postgresql"):
        wait_for_backends_to_end(db_url)

    fresh = make_engine(db_url, pool_size=2)
    try:
        check_after_crash(fresh, acked, payers)
    finally:
        fresh.dispose()


def crash_worker_payers(book: Book, count: int) -> list[str]:
    book.ledger.open_account(crash_worker.merchant_account("crash"))
    payers = []
    for i in range(count):
        code = crash_worker.payer_account("crash", i)
        book.ledger.open_account(code)
        register(book.ledger, NODE_KEY, code, crash_worker.payer_key("crash", i))
        book.topup(code, 1_000_000)
        payers.append(code)
    return payers


def wait_for_backends_to_end(db_url: str) -> None:
    """The killed worker's server processes finish (commit or roll back) on their own."""
    watcher = make_engine(db_url, pool_size=1)
    try:
        for _ in range(600):
            with watcher.connect() as conn:
                others = conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            if not others:
                return
            time.sleep(0.05)
        pytest.fail("the killed worker's PostgreSQL sessions never ended")
    finally:
        watcher.dispose()


def check_after_crash(engine: Engine, acked: list[int], payers: list[str]) -> None:
    merchant = crash_worker.merchant_account("crash")
    with engine.connect() as conn:
        stored = set(conn.scalars(select(transfers.c.id).where(transfers.c.kind == "payment")))
        legs = Counter(
            conn.scalars(select(postings.c.transfer_id).where(postings.c.transfer_id.in_(acked)))
        )
    missing = sorted(set(acked) - stored)
    assert missing == [], f"{len(missing)} acknowledged transfers lost, e.g. {missing[:5]}"
    assert set(legs.values()) == {2} and legs.keys() == set(acked)
    assert_no_half_transfer(engine)
    assert_balances_replay(engine)
    balances = all_balances(engine)
    assert balances[merchant] == sum(1_000_000 - balances[p] for p in payers)
    assert balances[merchant] > 0

    # The node starts again where it stopped: the next payment gets a fresh id.
    book = Book(Ledger(engine), NODE_KEY, {payers[0]: crash_worker.payer_key("crash", 0)})
    after = book.ledger.transfer(book.payment(payers[0], merchant, 1))
    assert after.transfer_id not in stored
    # The log is consistent as the kill left it (maybe mid-seal), and once sealed.
    report = audit(engine, node_public_key=NODE_KEY.public_key, workers=1)
    assert report.ok, report.findings[:10]
    seal_and_audit(engine)


# -- 8. what one process knows, another changes ----------------------------------------------
# On PostgreSQL a node judges a batch on the balances it last committed and checks them when
# it writes; another process (here: a second Ledger on the same database) may have moved
# them, or revoked a key, in between.


def test_a_balance_another_process_lowered_is_judged_at_its_new_value(book: Book) -> None:
    payer, shop = book.member("payer", 1_000), book.member("shop")
    other = Book(Ledger(book.ledger.engine), NODE_KEY, book.keys)
    assert isinstance(book.post(book.payment(payer, shop, 100)), Posted)  # 900 left
    assert isinstance(other.post(other.payment(payer, shop, 850)), Posted)  # 50 left
    refused = book.post(book.payment(payer, shop, 100))
    assert isinstance(refused, InsufficientFunds), refused
    assert refused.params["available"] == 50
    assert book.balance(payer) == 50
    assert_balances_replay(book.ledger.engine)


def test_a_balance_another_process_raised_is_judged_at_its_new_value(book: Book) -> None:
    payer, shop = book.member("payer", 1_000), book.member("shop")
    other = Book(Ledger(book.ledger.engine), NODE_KEY, book.keys)
    assert isinstance(book.post(book.payment(payer, shop, 950)), Posted)  # 50 left
    other.topup(payer, 1_000)  # 1,050
    posted = book.post(book.payment(payer, shop, 1_000))
    assert isinstance(posted, Posted), posted
    assert book.balance(payer) == 50
    assert_balances_replay(book.ledger.engine)


def test_a_key_another_process_revoked_signs_nothing_more(book: Book) -> None:
    payer, shop = book.member("payer", 1_000), book.member("shop")
    assert isinstance(book.post(book.payment(payer, shop, 100)), Posted)
    other = Ledger(book.ledger.engine)
    key = book.keys[payer]
    event = key_event(
        "revoke", origin=ORIGIN, owner=payer, public_key=key.public_key, signer=NODE_KEY
    )
    other.revoke_key(event, NODE_KEY.sign_bytes(canonical(event)))
    refused = book.post(book.payment(payer, shop, 100))
    assert isinstance(refused, RevokedKey), refused
    assert book.balance(payer) == 900


# One account debited from two processes at once (an exchange office, escrows releasing):
# each process's balance of it lags the other's payments. A batch whose debits that lagging
# balance covers commits as judged, if the true balance covers them too; it is judged again
# on locked rows only once the account is truly short.


def test_one_account_debited_by_two_processes_in_turn_is_judged_again_only_when_short(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger import repository as repo

    payer, shop = book.member("payer", 1_000), book.member("shop")
    other = Book(Ledger(book.ledger.engine), NODE_KEY, book.keys)
    locked = []
    lock_balances = repo.lock_balances

    def counted(conn: Any, account_ids: Any, key_ids: Any) -> Any:
        locked.append(account_ids)
        return lock_balances(conn, account_ids, key_ids)

    monkeypatch.setattr(repo, "lock_balances", counted)
    outcomes: list[Outcome] = []
    reads_under_lock = []
    for turn in range(8):  # two payments of 70 a turn: 14 of the 16 are affordable
        node = (book, other)[turn % 2]
        before = len(locked)
        outcomes += node.ledger.post([node.payment(payer, shop, 70) for _ in range(2)])
        reads_under_lock.append(len(locked) - before)

    assert all(isinstance(o, Posted) for o in outcomes[:14]), outcomes[:14]
    assert [type(o) for o in outcomes[14:]] == [InsufficientFunds] * 2
    assert [o.params["available"] for o in outcomes[14:]] == [20, 20]  # type: ignore[union-attr]
    assert (book.balance(payer), book.balance(shop)) == (20, 980)
    assert_balances_replay(book.ledger.engine)
    if book.ledger.engine.dialect.name == "postgresql":
        # Read under lock: each process's first batch (it does not know the balance yet),
        # and the last, which its lagging balance would have accepted.
        assert reads_under_lock == [1, 1, 0, 0, 0, 0, 0, 1]
    else:  # SQLite reads every batch's balances under its write lock
        assert reads_under_lock == [1] * 8


def test_a_refusal_judged_on_a_balance_another_process_lowered_tells_what_is_left(
    book: Book,
) -> None:
    payer, shop = book.member("payer", 1_000), book.member("shop")
    other = Book(Ledger(book.ledger.engine), NODE_KEY, book.keys)
    assert isinstance(book.post(book.payment(payer, shop, 700)), Posted)  # 300 left
    assert isinstance(other.post(other.payment(payer, shop, 50)), Posted)  # 250 left
    # Judged on 300, the first fits either way, but the refusal of the second would tell
    # of 100 where 50 are left: it is judged again.
    paid, refused = book.ledger.post(
        [book.payment(payer, shop, 200), book.payment(payer, shop, 150)]
    )
    assert isinstance(paid, Posted), paid
    assert isinstance(refused, InsufficientFunds), refused
    assert refused.params["available"] == 50
    assert book.balance(payer) == 50
    assert_balances_replay(book.ledger.engine)
