"""Sou's benchmarks: `make bench` (or `python -m bench --help`).

For SQLite and PostgreSQL, in one run on this machine:
  - signed transfers per second posted in-process by 64 concurrent payers through the
    group-commit poster (orders are signed beforehand, as payers' devices do), paying many
    merchants; then all paying one hot merchant; then the same 64 threads paying many
    merchants from one hot payer's account, and from 4 payers' (an exchange office, an
    escrow releasing: one account debited many times at once);
  - the sealer's lag (commit -> sealed in the Merkle log) during that load;
  - `sou audit` time for the ledger so built (about 100,000 transfers), as transfers/s;
and, as references measured in the same run: pgbench TPC-B tps on the same PostgreSQL
server with as many clients, and the raw Ed25519 verify rate (PyNaCl).
Then, through HTTP (bench/http.py): payments per second and their latency with the node
served by uvicorn in its own process and 64 clients paying through the API; and the counter
(bench/pos.py): QR sales end to end from 64 counters, how soon each counter is told of its
sales, and the time to draw one QR code.
`--only ledger`, `--only http` or `--only pos` runs one part. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nacl.signing
from sqlalchemy.engine import make_url

from bench import http, pos
from bench.audit import audit_apart
from bench.databases import PG_ADMIN, postgres_database
from ledger.canonical import canonical
from ledger.chart import member_account
from ledger.errors import LedgerError
from ledger.poster import Poster
from ledger.sealer import Sealed, Sealer
from ledger.service import Ledger, key_event
from ledger.signing import SignedOrder, SigningKey, new_order
from runtime.database import make_engine
from runtime.node import migrate
from runtime.sealer import SealerThread

ORIGIN = "bench.sou.localhost/village"


@dataclass
class EngineFigures:
    engine: str
    payers: int
    spread_tps: float = 0.0
    spread_batches: float = 0.0  # mean orders per commit
    hot_tps: float = 0.0  # one hot merchant
    hot_ratio: float = 0.0
    hot_payer_tps: float = 0.0
    hot_payer_ratio: float = 0.0
    hot_payers_tps: float = 0.0  # HOT_PAYERS payers
    hot_payers_ratio: float = 0.0
    sealer_lag_p50_ms: float = 0.0
    sealer_lag_max_ms: float = 0.0
    audit_transfers: int = 0
    audit_seconds: float = 0.0
    audit_tps: float = 0.0
    audit_cpu_per_100k: float = 0.0  # CPU seconds of the audit's processes (not the server's)
    audit_ok: bool = False
    audit_peak_mib: float = 0.0  # the audit's own process
    audit_worker_peak_mib: float = 0.0  # its largest worker process
    audit_floor_seconds: float = 0.0  # verifying as many Ed25519 signatures on every core
    audit_floor_ratio: float = 0.0
    resumed_transfers: int = 0
    resumed_seconds: float = 0.0
    resumed_ok: bool = False


@dataclass
class Figures:
    machine: str
    engines: list[EngineFigures] = field(default_factory=list)
    pgbench_tps: float | None = None
    pgbench_clients: int = 0
    ed25519_verify_per_s_1_thread: float = 0.0
    ed25519_verify_per_s_2_threads: float = 0.0
    http: list[http.HttpFigures] = field(default_factory=list)
    pos: pos.PosReport | None = None


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- databases -------------------------------------------------------------------------------


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    with postgres_database("sou_bench") as url:
        yield url


# -- the village -------------------------------------------------------------------------------


@dataclass
class Village:
    ledger: Ledger
    node_key: SigningKey
    payers: list[tuple[str, SigningKey]]
    merchants: list[str]


def build_village(url: str, payers: int, merchants: int, funds: int) -> Village:
    engine = make_engine(url, pool_size=8)
    migrate(engine)
    node_key = SigningKey.generate()
    ledger = Ledger.create(engine, origin=ORIGIN, currency="SOU", node_key=node_key)
    ledger.max_amount = funds

    def member(name: str) -> tuple[str, SigningKey]:
        code = member_account(name)
        ledger.open_account(code)
        key = SigningKey.generate()
        event = key_event(
            "register", origin=ORIGIN, owner=code, public_key=key.public_key, signer=node_key
        )
        ledger.register_key(event, node_key.sign_bytes(canonical(event)))
        return code, key

    payer_list = [member(f"payer-{i}") for i in range(payers)]
    shops = [member(f"shop-{i}")[0] for i in range(merchants)]
    topups = [
        node_key.sign(
            new_order(
                "topup",
                node_key,
                ORIGIN,
                to=code,
                amount=funds,
                currency="SOU",
                source="card",
                rule="stripe",
            )
        )
        for code, _ in payer_list
    ]
    for outcome in ledger.post(topups):
        assert not isinstance(outcome, LedgerError), outcome
    # Seal the setup now: the lag figures are for what is committed under load.
    Sealer(engine, node_key, ORIGIN).seal_all()
    return Village(ledger, node_key, payer_list, shops)


HOT_PAYERS = 4  # the "few accounts" case: a market's exchange office and a few escrows


@dataclass(frozen=True)
class Load:
    """Who pays whom: thread t pays from payer t % payers, to one merchant or to many."""

    label: str
    figure: str  # EngineFigures' attribute for its rate
    payers: int | None = None  # None: every thread its own payer
    one_merchant: bool = False


LOADS = (
    Load("many merchants", "spread_tps"),
    Load("one hot merchant", "hot_tps", one_merchant=True),
    Load("one hot payer", "hot_payer_tps", payers=1),
    Load(f"{HOT_PAYERS} hot payers", "hot_payers_tps", payers=HOT_PAYERS),
)


def presign(village: Village, per_thread: int, load: Load) -> list[list[SignedOrder]]:
    """Each thread's orders, signed ahead of time as the payers' devices would."""
    plans = []
    for p in range(len(village.payers)):
        code, key = village.payers[p % (load.payers or len(village.payers))]
        orders = []
        for n in range(per_thread):
            shop = village.merchants[0 if load.one_merchant else (p + n) % len(village.merchants)]
            orders.append(
                key.sign(
                    new_order(
                        "payment",
                        key,
                        ORIGIN,
                        to=shop,
                        amount=1 + n % 7,
                        currency="SOU",
                        ttl_s=3_600,
                        **{"from": code},
                    )
                )
            )
        plans.append(orders)
    return plans


def run_load(village: Village, plans: list[list[SignedOrder]]) -> tuple[float, float, list[int]]:
    """Every payer posts its orders one after the other; returns (tps, orders per commit,
    sealer lags in ms)."""
    engine = village.ledger.engine
    lags: list[int] = []

    def lag(sealed: Sealed) -> None:  # commit (batch start, in fact) -> sealed
        if sealed.oldest_ms is not None:
            lags.append(int(time.time() * 1000) - sealed.oldest_ms)

    # As the node runs them: a sealing round after the poster's batches (run by the poster
    # itself on SQLite, by its sealing thread on PostgreSQL), and the thread's when idle.
    sealer = Sealer(engine, village.node_key, ORIGIN, on_checkpoint=lag)
    sealing = SealerThread(sealer, 0.2).start()
    poster = Poster(village.ledger, sealer=sealer, seal_every=0.2).start()
    barrier = threading.Barrier(len(plans) + 1)
    failures: list[BaseException] = []

    def payer(orders: list[SignedOrder]) -> None:
        barrier.wait()
        for signed in orders:
            try:
                poster.post(signed)
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=payer, args=(orders,)) for orders in plans]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    batches, posted = poster.batches, poster.posted
    poster.stop()
    sealing.stop()
    if failures:
        raise RuntimeError(f"{len(failures)} payments failed, first: {failures[0]!r}")
    total = sum(len(orders) for orders in plans)
    return total / elapsed, posted / max(batches, 1), lags


def bench_engine(kind: str, url: str, args: argparse.Namespace) -> EngineFigures:
    figures = EngineFigures(kind, args.payers)
    say(f"[{kind}] building the village: {args.payers} payers, {args.merchants} shops")
    village = build_village(url, args.payers, args.merchants, funds=10_000_000)
    per_thread = args.transfers // (len(LOADS) * args.payers)
    lags: list[int] = []
    for load in LOADS:
        say(f"[{kind}] signing {per_thread * args.payers} orders ({load.label})")
        plans = presign(village, per_thread, load)
        say(f"[{kind}] posting them from {args.payers} threads")
        tps, per_commit, round_lags = run_load(village, plans)
        lags += round_lags
        setattr(figures, load.figure, tps)
        if load.figure == "spread_tps":
            figures.spread_batches = per_commit
        say(f"[{kind}]   {tps:,.0f} transfers/s, {per_commit:.1f} orders per commit")
    figures.hot_ratio = figures.hot_tps / figures.spread_tps
    figures.hot_payer_ratio = figures.hot_payer_tps / figures.spread_tps
    figures.hot_payers_ratio = figures.hot_payers_tps / figures.spread_tps
    figures.sealer_lag_p50_ms = statistics.median(lags) if lags else 0.0
    figures.sealer_lag_max_ms = max(lags, default=0)
    bench_audit(kind, village, figures, args)
    village.ledger.engine.dispose()
    return figures


def bench_audit(
    kind: str, village: Village, figures: EngineFigures, args: argparse.Namespace
) -> None:
    """`sou audit --full` in a process of its own (its peak memory apart from what built
    the ledger), the Ed25519 floor for as many signatures measured right after, then the
    audit resumed from its state once `--resume-transfers` more were posted."""
    url = village.ledger.engine.url.render_as_string(hide_password=False)
    public_key = village.node_key.public_key
    _analyse(village)
    say(f"[{kind}] auditing in full")
    full = audit_apart(url, public_key)
    figures.audit_transfers, figures.audit_seconds = full["transfers"], full["seconds"]
    figures.audit_tps = full["transfers"] / full["seconds"]
    figures.audit_cpu_per_100k = full["cpu_seconds"] * 100_000 / max(full["transfers"], 1)
    figures.audit_peak_mib, figures.audit_worker_peak_mib = (
        full["peak_mib"],
        full["worker_peak_mib"],
    )
    figures.audit_ok = full["ok"]
    if not full["ok"]:
        say(f"[{kind}] AUDIT FINDINGS: {full['findings']}")
    rate = verify_rate(os.cpu_count() or 1)
    figures.audit_floor_seconds = full["transfers"] / rate
    figures.audit_floor_ratio = full["seconds"] / figures.audit_floor_seconds
    per_thread = args.resume_transfers // args.payers
    if not (full["state"] and per_thread):
        return
    say(f"[{kind}] posting {per_thread * args.payers} more transfers, then auditing what is new")
    run_load(village, presign(village, per_thread, LOADS[0]))
    Sealer(village.ledger.engine, village.node_key, ORIGIN).seal_all()
    _analyse(village)
    resumed = audit_apart(url, public_key, full["state"])
    figures.resumed_transfers, figures.resumed_seconds = resumed["transfers"], resumed["seconds"]
    figures.resumed_ok = resumed["ok"]


def _analyse(village: Village) -> None:
    """The tables as PostgreSQL's autovacuum keeps them on a running node: statistics for
    the planner, and the rows marked visible to all, so that a query served by an index
    alone does not visit the table (a server run with autovacuum off, as this machine's,
    would otherwise show the audit a ledger no running node has)."""
    engine = village.ledger.engine
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


def cpu_seconds() -> float:
    """CPU time of this process and of its children gone. On a shared machine it moves far
    less than the wall time when other work runs at the same time."""
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)  # the audit's workers exit on their own after it
    own, gone = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + gone.ru_utime + gone.ru_stime


# -- references ------------------------------------------------------------------------------


def pgbench(clients: int, seconds: int) -> float | None:
    if shutil.which("pgbench") is None:
        say("pgbench not found: no TPC-B reference")
        return None
    url = make_url(PG_ADMIN)
    with database("postgresql", Path(".")) as db_url:
        name = make_url(db_url).database
        base = [
            "pgbench",
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
        ]
        say(f"[pgbench] initialising scale 10, then TPC-B with {clients} clients, {seconds} s")
        subprocess.run([*base, "-i", "-q", "-s", "10", name], check=True, capture_output=True)
        run = subprocess.run(
            [*base, "-c", str(clients), "-j", "2", "-T", str(seconds), name],
            check=True,
            capture_output=True,
            text=True,
        )
    found = re.search(r"tps = ([\d.]+)", run.stdout)
    return float(found.group(1)) if found else None


def verify_rate(threads: int, count: int = 40_000) -> float:
    key = nacl.signing.SigningKey.generate()
    message = b"x" * 300
    signature = key.sign(message).signature
    verifier = key.verify_key

    def work(n: int) -> None:
        for _ in range(n):
            verifier.verify(message, signature)

    workers = [threading.Thread(target=work, args=(count // threads,)) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return count / (time.perf_counter() - started)


# -- report ----------------------------------------------------------------------------------


def print_table(figures: Figures) -> None:
    print(f"\nSou benchmarks on {figures.machine}")
    print(f"{'':38}" + "".join(f"{e.engine:>14}" for e in figures.engines))
    rows = [
        ("signed transfers/s, 64 payers", "spread_tps", "{:,.0f}"),
        ("  orders per commit", "spread_batches", "{:.1f}"),
        ("signed transfers/s, one hot merchant", "hot_tps", "{:,.0f}"),
        ("  hot / spread", "hot_ratio", "{:.0%}"),
        ("signed transfers/s, one hot payer", "hot_payer_tps", "{:,.0f}"),
        ("  hot / spread", "hot_payer_ratio", "{:.0%}"),
        (f"signed transfers/s, {HOT_PAYERS} hot payers", "hot_payers_tps", "{:,.0f}"),
        ("  hot / spread", "hot_payers_ratio", "{:.0%}"),
        ("sealer lag p50 (ms)", "sealer_lag_p50_ms", "{:.0f}"),
        ("sealer lag max (ms)", "sealer_lag_max_ms", "{:.0f}"),
        ("audit: transfers checked", "audit_transfers", "{:,}"),
        ("audit: seconds", "audit_seconds", "{:.1f}"),
        ("audit: transfers/s", "audit_tps", "{:,.0f}"),
        ("audit: s per 100,000 transfers", None, "{:.1f}"),
        ("audit: CPU s per 100,000 transfers", "audit_cpu_per_100k", "{:.1f}"),
        ("audit: all checks hold", "audit_ok", "{}"),
        ("audit: peak memory (MiB)", "audit_peak_mib", "{:.0f}"),
        ("  its largest worker (MiB)", "audit_worker_peak_mib", "{:.0f}"),
        ("Ed25519 floor, all cores (s)", "audit_floor_seconds", "{:.1f}"),
        ("  audit / floor", "audit_floor_ratio", "{:.2f}x"),
        ("resumed audit: new transfers", "resumed_transfers", "{:,}"),
        ("resumed audit: seconds", "resumed_seconds", "{:.2f}"),
        ("resumed audit: all checks hold", "resumed_ok", "{}"),
    ]
    for label, attr, fmt in rows:
        cells = []
        for e in figures.engines:
            value = 100_000 / e.audit_tps if attr is None else getattr(e, attr)
            cells.append(f"{fmt.format(value):>14}")
        print(f"{label:38}" + "".join(cells))
    print("\nReferences measured in the same run:")
    if figures.pgbench_tps is not None:
        print(f"  pgbench TPC-B, {figures.pgbench_clients} clients: {figures.pgbench_tps:,.0f} tps")
    print(
        f"  Ed25519 verify (PyNaCl): {figures.ed25519_verify_per_s_1_thread:,.0f}/s on one "
        f"thread, {figures.ed25519_verify_per_s_2_threads:,.0f}/s on two"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--engines",
        default="sqlite,postgresql",
        help="comma-separated: sqlite, postgresql (default: both)",
    )
    parser.add_argument(
        "--transfers",
        type=int,
        default=102_400,
        help="payments posted per engine, a quarter for each load: spread, one hot "
        f"merchant, one hot payer, {HOT_PAYERS} hot payers (default 102,400: the audit "
        "then checks about 100,000 transfers)",
    )
    parser.add_argument("--payers", type=int, default=64)
    parser.add_argument("--merchants", type=int, default=16)
    parser.add_argument(
        "--audit-workers",
        type=int,
        default=0,
        help="processes checking transfers (default: one per core)",
    )
    parser.add_argument(
        "--resume-transfers",
        type=int,
        default=10_240,
        help="transfers posted after the full audit, for the resumed one (default 10,240)",
    )
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--only",
        choices=("ledger", "http", "pos"),
        help="run only the in-process ledger benchmarks, or only the HTTP one, or only the "
        "counter's",
    )
    http.add_arguments(parser)
    pos.add_arguments(parser, prefix="pos-")
    args = parser.parse_args()

    uname = os.uname()
    figures = Figures(machine=f"{uname.nodename} ({uname.machine}, {os.cpu_count()} cores)")
    if args.only in (None, "ledger"):
        with tempfile.TemporaryDirectory(prefix="sou-bench-") as workdir:
            for kind in args.engines.split(","):
                with database(kind.strip(), Path(workdir)) as url:
                    figures.engines.append(bench_engine(kind.strip(), url, args))
        if "postgresql" in args.engines:
            figures.pgbench_clients = args.payers
            figures.pgbench_tps = pgbench(args.payers, args.pgbench_seconds)
        say("[ed25519] measuring raw verify rate")
        figures.ed25519_verify_per_s_1_thread = verify_rate(1)
        figures.ed25519_verify_per_s_2_threads = verify_rate(2)
        print_table(figures)
    if args.only in (None, "http"):
        figures.http = http.run(args)
    if args.only in (None, "pos"):
        figures.pos = pos.run(args)
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2))


if __name__ == "__main__":
    main()
