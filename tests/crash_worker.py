"""Nodes in other processes for tests/test_concurrency.py (DESIGN musts 5 and 9).

As a script, a node that posts payments as fast as it can until it is killed with SIGKILL:

    python tests/crash_worker.py DATABASE_URL --node-seed HEX [--payers 8] [--name crash]

The payers' keys and accounts are derived from `--name` by the functions below, which the
test uses to open and fund them first. Payments go through a group-commit Poster from one
thread per payer, with a sealer thread running too (so the kill may land mid-seal). Each
acknowledged transfer's id is printed on its own line, flushed, only after the Poster has
returned it: a printed id is a promise that the transfer is committed.

`race_in_process` is the body of a process racing others to overspend one account; it lives
here rather than in the test module so that spawned children import little.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.chart import member_account
from ledger.errors import LedgerError
from ledger.poster import Poster
from ledger.posting import Posted
from ledger.sealer import Sealer
from ledger.service import Ledger
from ledger.signing import SignedOrder, SigningKey, new_order
from runtime.database import make_engine
from runtime.sealer import SealerThread


def payer_key(name: str, i: int) -> SigningKey:
    return SigningKey(hashlib.sha256(f"sou-test-{name}-payer-{i}".encode()).digest())


def payer_account(name: str, i: int) -> str:
    return member_account(f"{name}-payer-{i}")


def merchant_account(name: str) -> str:
    return member_account(f"{name}-shop")


def payment(ledger: Ledger, key: SigningKey, payer: str, payee: str, cents: int) -> SignedOrder:
    order = new_order("payment", key, ledger.origin, to=payee, amount=cents)
    order.update({"from": payer, "currency": ledger.chart.local})  # `from` is a keyword
    return key.sign(order)


def race_in_process(
    url: str,
    seed: bytes,
    payer: str,
    payees: list[str],
    first: int,
    count: int,
    cents: int,
    barrier: Any,
    results: Any,
) -> None:
    """One node process: its own engine and Ledger, four threads each posting a quarter of
    `count` payments directly (one transaction each), started with the others by `barrier`.
    Puts on `results` one (outcome, transfer id or error code, postings) per payment."""
    engine = make_engine(url, pool_size=8)
    found: list[tuple[str, Any, Any]] = []
    try:
        ledger, key = Ledger(engine), SigningKey(seed)
        orders = [
            payment(ledger, key, payer, payees[(first + i) % len(payees)], cents)
            for i in range(count)
        ]
        barrier.wait(timeout=120)

        def post(share: list[SignedOrder]) -> None:
            for order in share:
                try:
                    outcome = ledger.post([order])[0]
                except Exception as exc:
                    found.append(("error", repr(exc), None))
                    continue
                found.append(
                    ("posted", outcome.transfer_id, outcome.postings)
                    if isinstance(outcome, Posted)
                    else ("refused", outcome.code, None)
                )

        threads = [threading.Thread(target=post, args=(orders[t::4],)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException as exc:
        found.append(("error", repr(exc), None))
    finally:
        results.put(found)
        engine.dispose()


def copies_in_process(
    url: str,
    signed: list[tuple[dict[str, Any], bytes]],
    copies: int,
    barrier: Any,
    results: Any,
) -> None:
    """One node process sent every order `copies` times at once, as a phone retrying on a
    bad connection does: a group-commit Poster, one thread per copy, started with the
    other processes by `barrier`. Puts on `results` one (order index, outcome, transfer id
    or error code, replayed) per copy."""
    engine = make_engine(url, pool_size=8)
    found: list[tuple[int, str, Any, bool]] = []
    lock = threading.Lock()
    poster: Poster | None = None
    try:
        poster = Poster(Ledger(engine)).start()
        orders = [SignedOrder(order, sig) for order, sig in signed]
        barrier.wait(timeout=120)

        def send(i: int) -> None:
            try:
                outcome: Any = poster.post(orders[i]) if poster else None
                line = (i, "posted", outcome.transfer_id, outcome.replayed)
            except LedgerError as exc:
                line = (i, "refused", exc.code, False)
            except Exception as exc:
                line = (i, "error", repr(exc), False)
            with lock:
                found.append(line)

        threads = [
            threading.Thread(target=send, args=(i,))
            for _ in range(copies)
            for i in range(len(orders))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException as exc:
        found.append((-1, "error", repr(exc), False))
    finally:
        if poster is not None:
            poster.stop()
        results.put(found)
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="post payments until killed")
    parser.add_argument("url")
    parser.add_argument("--node-seed", required=True, help="the node key's seed, in hex")
    parser.add_argument("--payers", type=int, default=8)
    parser.add_argument("--name", default="crash")
    args = parser.parse_args(argv)

    engine = make_engine(args.url, pool_size=4)
    ledger = Ledger(engine)
    node_key = SigningKey(bytes.fromhex(args.node_seed))
    # Two sealers race, as a node's poster and a CLI `sou seal` may: the log must not care.
    SealerThread(Sealer(engine, node_key, ledger.origin), 0.02).start()
    poster = Poster(ledger, sealer=Sealer(engine, node_key, ledger.origin), seal_every=0.02)
    poster.start()
    merchant = merchant_account(args.name)
    out = threading.Lock()

    def pay_forever(i: int) -> None:
        key, account = payer_key(args.name, i), payer_account(args.name, i)
        n = 0
        while True:
            n += 1
            order = payment(ledger, key, account, merchant, 1 + n % 97)
            try:
                posted = poster.post(order)
            except LedgerError as exc:  # not expected: the payers are funded for hours
                print(f"payer {i}: refused: {exc!r}", file=sys.stderr, flush=True)
                return
            with out:
                sys.stdout.write(f"{posted.transfer_id}\n")
                sys.stdout.flush()

    threads = [
        threading.Thread(target=pay_forever, args=(i,), daemon=True) for i in range(args.payers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
